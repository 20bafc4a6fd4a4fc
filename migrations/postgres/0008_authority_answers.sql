-- Two-stage receipts (issue 14): after `delivered`, a transport that reports
-- the authority's decision later (XTA 2 transport reports, FIT-Connect's
-- event log) is asked about each submission it took, until it answers.
-- What is awaited is the transport's message id kept in transport_messages
-- (kept before sending) whose receipt says delivered; these columns say when
-- it was last asked and what the answer was:
-- * last_polled_at: when the report source was last asked (NULL: never);
-- * answered_at: when the answer was committed (NULL: still awaited);
-- * accepted: the authority's answer (accepted_by_authority / rejected_by_authority);
-- * reason_codes: the authority's codes, space-separated, each
--   [A-Za-z0-9_.:-]{1,64}, at most 16: codes only, never free text;
-- * answer_seq: the `seq` of the answer's receipt event (the receipt's own
--   event keeps receipts.events, so a repeated `delivered` keeps its seq).
-- Metadata only; nothing of the payload.
ALTER TABLE transport_messages ADD COLUMN last_polled_at TEXT;
ALTER TABLE transport_messages ADD COLUMN answered_at TEXT;
ALTER TABLE transport_messages ADD COLUMN accepted BOOLEAN;
ALTER TABLE transport_messages ADD COLUMN reason_codes TEXT;
ALTER TABLE transport_messages ADD COLUMN answer_seq BIGINT;
CREATE INDEX transport_messages_awaiting ON transport_messages (destination)
    WHERE answered_at IS NULL;
