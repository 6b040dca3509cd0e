//! Certificates for TLS tests, made with `openssl` (Debian's `openssl`).

/// Certificates for a TLS test, made with `openssl` in `dir`: a CA
/// (`ca.pem`), a server's for `server_san` (`IP:127.0.0.1`) and a client's,
/// both signed by it (`server.pem`, `client.pem` and their `.key`s), and a
/// stranger's signed by another CA (`stranger.pem`).
pub fn make_certs(dir: &std::path::Path, server_san: &str) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    for ca in ["ca", "other-ca"] {
        let mut a = vec!["req", "-x509", "-days", "1", "-subj", "/CN=cnm test CA", "-keyout"];
        let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
        a.extend([key.as_str(), "-out", pem.as_str()]);
        a.extend(ec);
        run(&a);
    }
    std::fs::write(dir.join("server.ext"), format!("subjectAltName={server_san}\nextendedKeyUsage=serverAuth\n"))
        .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, ca) in [("server", "ca"), ("client", "ca"), ("stranger", "other-ca")] {
        let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
        let mut a = vec!["req", "-subj", "/CN=cnm test", "-keyout", key.as_str(), "-out", csr.as_str()];
        a.extend(ec);
        run(&a);
        let ext = if name == "server" { "server.ext" } else { "client.ext" };
        let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            &pem,
            "-extfile",
            ext,
        ]);
    }
}
