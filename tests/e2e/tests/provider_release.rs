//! The provider installs the way a private registry mirror serves it: `provider/release.sh`
//! packages the built provider (the Terraform Registry's zip, SHA256SUMS and protocol-6
//! manifest, and the provider network mirror protocol's index.json and VERSION.json); a local
//! HTTPS server (Python's, with a certificate from a self-signed CA that `SSL_CERT_FILE` makes
//! the CLIs trust) serves the mirror; `tofu init` and `terraform init` install
//! `aigov/aigov` from it (the lock file records the archive's hash), then plan, apply and
//! destroy a resource against moto; an archive that does not match the mirror's hash is refused.
//! The release holds linux arm64 as well (cross-compiled with Debian's gcc-aarch64-linux-gnu):
//! its zip is in SHA256SUMS and the mirror's listing, and the binary in it is an aarch64 ELF.
//! The commands are the quickstart's (`docs/quickstart.md`), run as written.

use aigov_e2e::succeeded as ok;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aigov_e2e::quickstart;
use aigov_e2e::terraform::{PROVIDER_VERSION, clis, provider_block};
use aigov_e2e::unique;

/// The ELF header's machine (`e_machine`) of `binary`: 62 is x86-64, 183 is AArch64.
fn elf_machine(binary: &[u8]) -> u16 {
    assert_eq!(&binary[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(binary[4], 2, "not a 64-bit ELF file");
    assert_eq!(binary[5], 1, "not little-endian");
    u16::from_le_bytes([binary[18], binary[19]])
}

/// The one file inside the provider zip `path`: its name and bytes (with Python's zipfile).
fn unzip(path: &Path) -> (String, Vec<u8>) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             [i] = z.infolist()\n\
             sys.stdout.buffer.write(i.filename.encode() + b'\\n' + z.read(i))",
        ])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let newline = out.stdout.iter().position(|&b| b == b'\n').expect("a name");
    (
        String::from_utf8(out.stdout[..newline].to_vec()).expect("utf-8"),
        out.stdout[newline + 1..].to_vec(),
    )
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with openssl in `dir`.
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        ok(out, "openssl");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=aigov test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
}

/// Python's HTTPS file server over `root` on a free loopback port; killed when dropped.
struct Https {
    child: Child,
    port: u16,
}

impl Https {
    fn start(root: &Path, certs: &Path) -> Https {
        let port = aigov_e2e::aigov::free_port();
        let script = format!(
            "import functools, http.server, ssl\n\
             handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory={root:?})\n\
             server = http.server.ThreadingHTTPServer(('127.0.0.1', {port}), handler)\n\
             context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
             context.load_cert_chain({cert:?}, {key:?})\n\
             server.socket = context.wrap_socket(server.socket, server_side=True)\n\
             server.serve_forever()\n",
            root = root.display().to_string(),
            cert = certs.join("server.pem").display().to_string(),
            key = certs.join("server.key").display().to_string(),
        );
        let child = Command::new("python3")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the HTTPS mirror never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Https { child, port }
    }
}

impl Drop for Https {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tofu_and_terraform_install_the_released_provider_from_an_https_network_mirror() {
    let root = std::env::temp_dir().join(unique("provider-release"));
    let dist = root.join("dist");
    std::fs::create_dir_all(&root).expect("scratch dir");
    // The quickstart's command, its release builds standing for this build's (both platforms).
    let release = quickstart::with_built_paths(&quickstart::command("bash provider/release.sh"));
    ok(
        quickstart::bash(&release, quickstart::workdir(&root), &[], &[]),
        "release.sh",
    );
    let sums = std::fs::read_to_string(dist.join(format!(
        "terraform-provider-aigov_{PROVIDER_VERSION}_SHA256SUMS"
    )))
    .expect("SHA256SUMS");
    for (platform, machine) in [("linux_amd64", 62), ("linux_arm64", 183)] {
        let zip = format!("terraform-provider-aigov_{PROVIDER_VERSION}_{platform}.zip");
        let sha = sums
            .lines()
            .find(|l| l.ends_with(&format!("  {zip}")))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("SHA256SUMS lists {zip}: {sums}"));
        let digest = ok(
            Command::new("sha256sum")
                .arg(dist.join(&zip))
                .output()
                .expect("sha256sum"),
            "sha256sum",
        );
        assert!(digest.starts_with(sha), "{zip}: {digest} against {sha}");
        let (name, binary) = unzip(&dist.join(&zip));
        assert_eq!(
            name,
            format!("terraform-provider-aigov_v{PROVIDER_VERSION}")
        );
        assert_eq!(
            elf_machine(&binary),
            machine,
            "{zip} holds the wrong machine"
        );
        for host in ["registry.terraform.io", "registry.opentofu.org"] {
            let listing = std::fs::read_to_string(
                dist.join(format!("mirror/{host}/aigov/aigov/{PROVIDER_VERSION}.json")),
            )
            .expect("VERSION.json");
            let listing: serde_json::Value = serde_json::from_str(&listing).expect("json");
            assert_eq!(
                listing["archives"][platform]["hashes"][0],
                format!("zh:{sha}"),
                "{host}: {listing}"
            );
        }
    }
    let zip = format!("terraform-provider-aigov_{PROVIDER_VERSION}_linux_amd64.zip");
    let sha = sums
        .lines()
        .find(|l| l.ends_with(&zip))
        .and_then(|l| l.split_whitespace().next())
        .expect("the archive's digest")
        .to_owned();
    let manifest = std::fs::read_to_string(dist.join(format!(
        "terraform-provider-aigov_{PROVIDER_VERSION}_manifest.json"
    )))
    .expect("manifest");
    assert!(
        manifest.contains(r#""protocol_versions":["6.0"]"#),
        "{manifest}"
    );

    let certs = root.join("certs");
    std::fs::create_dir_all(&certs).expect("certs dir");
    certificates(&certs);
    let mirror = Https::start(&dist.join("mirror"), &certs);
    // The quickstart's CLI configuration, pointing at this mirror.
    let tfrc = root.join("cli.tfrc");
    let config = quickstart::block("hcl", "network_mirror");
    assert!(
        config.contains("https://mirror.example.internal/"),
        "{config}"
    );
    std::fs::write(
        &tfrc,
        config.replace(
            "https://mirror.example.internal/",
            &format!("https://127.0.0.1:{}/", mirror.port),
        ),
    )
    .expect("tfrc");
    for cli in clis() {
        let dir: PathBuf = root.join(cli.name);
        std::fs::create_dir_all(&dir).expect("workspace");
        let group = unique("/aigov/release");
        let main_tf = format!(
            "{}\nresource \"aigov_log_group\" \"usage\" {{\n  name = \"{group}\"\n  retention_in_days = 7\n}}\n",
            provider_block("")
        );
        std::fs::write(dir.join("main.tf"), main_tf).expect("main.tf");
        let run = |args: &[&str]| {
            Command::new(&cli.path)
                .args(args)
                .arg("-no-color")
                .current_dir(&dir)
                .env("TF_CLI_CONFIG_FILE", &tfrc)
                .env("SSL_CERT_FILE", certs.join("ca.pem"))
                .env("TF_IN_AUTOMATION", "1")
                .env("CHECKPOINT_DISABLE", "1")
                .output()
                .expect("the CLI runs")
        };
        let init = ok(
            run(&["init", "-input=false"]),
            &format!("{} init", cli.name),
        );
        assert!(init.contains(PROVIDER_VERSION), "{}: {init}", cli.name);
        // The mirror's zh: hash was checked on download; OpenTofu records it, terraform
        // records the h1: hash of what it unpacked.
        let lock = std::fs::read_to_string(dir.join(".terraform.lock.hcl")).expect("lock file");
        let recorded = match cli.name {
            "tofu" => lock.contains(&format!("zh:{sha}")),
            _ => lock.contains("\"h1:"),
        };
        assert!(recorded, "{}: {lock}", cli.name);
        // This machine's platform is the one installed, from the amd64 archive.
        let host = match cli.name {
            "tofu" => "registry.opentofu.org",
            _ => "registry.terraform.io",
        };
        let installed = dir.join(format!(
            ".terraform/providers/{host}/aigov/aigov/{PROVIDER_VERSION}/linux_amd64/terraform-provider-aigov_v{PROVIDER_VERSION}"
        ));
        let binary = std::fs::read(&installed)
            .unwrap_or_else(|e| panic!("{}: {}: {e}", cli.name, installed.display()));
        assert_eq!(elf_machine(&binary), 62, "{}", cli.name);
        ok(
            run(&["plan", "-input=false"]),
            &format!("{} plan", cli.name),
        );
        ok(
            run(&["apply", "-input=false", "-auto-approve"]),
            &format!("{} apply", cli.name),
        );
        ok(
            run(&["destroy", "-input=false", "-auto-approve"]),
            &format!("{} destroy", cli.name),
        );
    }
    // A mirror whose archive does not match its hash is refused.
    let listing = dist.join(format!(
        "mirror/registry.opentofu.org/aigov/aigov/{PROVIDER_VERSION}.json"
    ));
    let text = std::fs::read_to_string(&listing).expect("VERSION.json");
    std::fs::write(&listing, text.replace(&sha, &"0".repeat(64))).expect("tampered");
    let tofu = clis().into_iter().find(|c| c.name == "tofu").expect("tofu");
    let dir = root.join("tampered");
    std::fs::create_dir_all(&dir).expect("workspace");
    std::fs::write(dir.join("main.tf"), provider_block("")).expect("main.tf");
    let out = Command::new(&tofu.path)
        .args(["init", "-input=false", "-no-color"])
        .current_dir(&dir)
        .env("TF_CLI_CONFIG_FILE", &tfrc)
        .env("SSL_CERT_FILE", certs.join("ca.pem"))
        .output()
        .expect("tofu runs");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "a tampered archive was installed");
    assert!(said.contains("checksum"), "{said}");
    drop(mirror);
    let _ = std::fs::remove_dir_all(&root);
}
