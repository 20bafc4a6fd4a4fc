-- The transport's own message id of a submission (XTA 2: the id that
-- createMessageId handed out), kept from before the first sendMessage until
-- the receipt goes: every retry, parked run and restart sends under the same
-- id, so the XTA server recognises a repeat (error 9024) and the authority
-- never gets a second message. Metadata only; no payload.
CREATE TABLE transport_messages (
    submission_id TEXT NOT NULL,
    destination   TEXT NOT NULL,
    transport     TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (submission_id, destination)
);
CREATE INDEX transport_messages_created_at ON transport_messages (created_at);
