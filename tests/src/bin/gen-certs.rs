//! `gen-certs DIR`: writes a local test PKI (authority CA, server certificate
//! for localhost, Kurier client CA and client certificate) for the demo.

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: gen-certs DIR"))?;
    let files = kurier_e2e::pki::write_pki(std::path::Path::new(&dir))?;
    println!("certificates written to {dir}");
    println!("  authority: {}", files.authority_cert.display());
    println!("  kurier:    {}", files.kurier_cert.display());
    Ok(())
}
