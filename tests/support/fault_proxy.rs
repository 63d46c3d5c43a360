//! The TCP fault proxy (`interop/cmd/faultproxy`) in front of a real API
//! server: one port per client identity, faults set over its admin
//! endpoint. Bytes pass through untouched, so TLS is end to end; the
//! server's certificate names 127.0.0.1, which the proxy's ports are on too.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kube_elector_testing::FaultTarget;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The environment variable naming the proxy binary (`scripts/e2e-real.sh`
/// sets it); else `target/interop/faultproxy` is tried.
pub const PROXY_ENV: &str = "KUBE_ELECTOR_FAULTPROXY";

/// The proxy binary, if built.
pub fn binary() -> Option<PathBuf> {
    std::env::var_os(PROXY_ENV)
        .map(PathBuf::from)
        .or_else(|| {
            let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/interop/faultproxy");
            local.exists().then_some(local)
        })
        .filter(|p| p.exists())
}

/// A running proxy; stopped when dropped.
pub struct FaultProxy {
    _child: Child,
    admin: String,
    /// What every client's config starts from: the real server's, whose
    /// URL each client gets with its own port instead.
    base: kube::Config,
}

impl FaultProxy {
    /// Starts the proxy in front of the server of `base` (a `https://`
    /// URL on 127.0.0.1).
    ///
    /// # Panics
    /// When the proxy does not start, or says nothing within 10 s.
    pub async fn start(binary: &Path, base: kube::Config) -> Self {
        let url = &base.cluster_url;
        let upstream = format!(
            "{}:{}",
            url.host().expect("a host in the server's URL"),
            url.port_u16().unwrap_or(443)
        );
        let mut child = Command::new(binary)
            .args(["--upstream", &upstream])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the fault proxy");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("the fault proxy is ready within 10 s")
            .expect("the fault proxy's stdout")
            .expect("a READY line");
        let admin = ready
            .strip_prefix("READY http://")
            .unwrap_or_else(|| panic!("unexpected first line of the fault proxy: {ready}"))
            .to_owned();
        Self {
            _child: child,
            admin,
            base,
        }
    }

    /// A POST of `body` to the admin endpoint; its JSON answer.
    ///
    /// A blocking request on 127.0.0.1 (it takes well under a millisecond),
    /// so that faults can be set from synchronous code as the embedded
    /// server's are.
    fn post(&self, path: &str, body: &Value) -> Value {
        let body = body.to_string();
        let mut stream = TcpStream::connect(&self.admin).expect("connect to the fault proxy");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.admin,
            body.len()
        )
        .expect("write to the fault proxy");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .expect("read the fault proxy's answer");
        let (head, json) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "fault proxy: POST {path} {body}: {answer}"
        );
        serde_json::from_str(json).unwrap_or(Value::Null)
    }

    /// The port of `client` (a new one if new).
    pub fn port_of(&self, client: &str) -> u16 {
        let answer = self.post("/clients", &json!({ "name": client }));
        u16::try_from(answer["port"].as_u64().expect("a port")).expect("a port")
    }

    /// The config of a client whose connections go through its own port.
    pub fn config_for(&self, client: &str) -> kube::Config {
        let mut config = self.base.clone();
        config.cluster_url = format!("https://127.0.0.1:{}", self.port_of(client))
            .parse()
            .expect("a URL");
        config
    }

    /// A client whose connections go through its own port.
    pub fn client_for(&self, client: &str) -> kube::Client {
        kube::Client::try_from(self.config_for(client)).expect("a client through the proxy")
    }

    /// Writes a kubeconfig (JSON, which is YAML too) for `client` through
    /// its port, from the real server's kubeconfig at `base`, for a program
    /// in another language.
    pub fn write_kubeconfig(&self, base: &Path, client: &str, path: &Path) {
        let text = std::fs::read_to_string(base).expect("read the base kubeconfig");
        let mut kubeconfig: kube::config::Kubeconfig =
            kube::config::Kubeconfig::from_yaml(&text).expect("parse the base kubeconfig");
        let server = format!("https://127.0.0.1:{}", self.port_of(client));
        for named in &mut kubeconfig.clusters {
            if let Some(cluster) = named.cluster.as_mut() {
                cluster.server = Some(server.clone());
            }
        }
        let json = serde_json::to_string(&kubeconfig).expect("serialize the kubeconfig");
        std::fs::write(path, json).expect("write the kubeconfig");
    }

    /// Sets faults of `target` (keys of `POST /faults`, see
    /// `interop/cmd/faultproxy`); returns how many connections were reset.
    pub fn set(&self, target: &FaultTarget, faults: Value) -> u64 {
        let mut body = faults;
        body["target"] = json!(match target {
            FaultTarget::Client(id) => id.as_str(),
            _ => "all",
        });
        self.post("/faults", &body)["reset"].as_u64().unwrap_or(0)
    }

    /// Every fault off; held bytes go through, connections are kept.
    pub fn clear(&self) {
        self.post("/faults", &json!({ "clear": true }));
    }
}
