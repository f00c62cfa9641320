//! Just enough of the W3C WebDriver protocol to drive Debian's headless Chromium
//! through `chromedriver`: one driver process and one fresh browser profile per test.
//!
//! Chromium and chromedriver are found at `/usr/bin` (or `NEXUS_TEST_CHROMIUM`,
//! `NEXUS_TEST_CHROMEDRIVER`). Missing, a browser test is skipped with a notice, except
//! in CI (`CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// How long a condition may take to come true before the test fails.
const PATIENCE: Duration = Duration::from_secs(15);

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Flags that work in this sandbox: no GPU, no sandbox, no outside traffic of its own.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

fn tool(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// Chromium and chromedriver, if both are installed. Missing: `None` with a notice, or
/// a failure when `CI` is set.
pub fn installed() -> Option<(PathBuf, PathBuf)> {
    let chromium = tool("NEXUS_TEST_CHROMIUM", "/usr/bin/chromium");
    let driver = tool("NEXUS_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
    let missing: Vec<&Path> = [&chromium, &driver]
        .into_iter()
        .filter(|p| !p.exists())
        .map(PathBuf::as_path)
        .collect();
    if missing.is_empty() {
        return Some((chromium, driver));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but {missing:?} is missing: browser tests must run in CI \
         (apt-get install chromium chromium-driver)"
    );
    eprintln!(
        "skipped: {missing:?} missing (apt-get install chromium chromium-driver to run the browser tests)"
    );
    None
}

pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A headless Chromium with a `width`×`height` window.
    pub async fn start(chromium: &Path, driver: &Path, width: u32, height: u32) -> Browser {
        let port = free_port();
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&http, &base, &mut child).await;
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args: Vec<String> = FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={width},{height}"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {resp}"))
            .to_owned();
        let browser = Browser {
            http,
            session: format!("{base}/session/{session}"),
            driver: child,
            _profile: profile,
        };
        browser.viewport(width, height).await;
        browser
    }

    /// Sizes the window so the page itself is `width`×`height` CSS pixels.
    pub async fn viewport(&self, width: u32, height: u32) {
        let chrome = self
            .script(
                "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]",
                json!([]),
            )
            .await;
        let extra = |i: usize| u32::try_from(chrome[i].as_u64().unwrap_or(0)).unwrap_or(0);
        let rect = json!({"width": width + extra(0), "height": height + extra(1)});
        self.cmd(reqwest::Method::POST, "/window/rect", Some(rect))
            .await;
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("webdriver json");
        if let Some(error) = resp["value"]["error"].as_str() {
            panic!("webdriver {path}: {error}: {}", resp["value"]["message"]);
        }
        resp["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn url(&self) -> String {
        let v = self.cmd(reqwest::Method::GET, "/url", None).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `js` (a function body; `arguments` are `args`) in the page.
    pub async fn script(&self, js: &str, args: Value) -> Value {
        let body = json!({ "script": js, "args": args });
        self.cmd(reqwest::Method::POST, "/execute/sync", Some(body))
            .await
    }

    /// Waits until `js` returns something truthy; fails naming `what` after [`PATIENCE`].
    pub async fn wait_until(&self, what: &str, js: &str, args: Value) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let v = self.script(js, args.clone()).await;
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element matched by `css` is displayed.
    pub async fn wait_visible(&self, css: &str) {
        self.wait_until(
            &format!("{css} to be visible"),
            "const e = document.querySelector(arguments[0]); \
             return e !== null && e.checkVisibility();",
            json!([css]),
        )
        .await;
    }

    async fn element(&self, css: &str) -> String {
        self.wait_visible(css).await;
        let body = json!({ "using": "css selector", "value": css });
        let v = self
            .cmd(reqwest::Method::POST, "/element", Some(body))
            .await;
        v[ELEMENT].as_str().expect("element id").to_owned()
    }

    /// Clicks the element `css` as a user would (it must be visible).
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Types `text` into the field `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The rendered text of `css` once it is visible.
    pub async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        let v = self
            .cmd(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// A PNG of the window, written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("screenshot base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Ends the browser session and the driver.
    pub async fn quit(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn wait_ready(http: &reqwest::Client, base: &str, child: &mut Child) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(resp) = http.get(format!("{base}/status")).send().await
            && let Ok(v) = resp.json::<Value>().await
            && v["value"]["ready"] == json!(true)
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("chromedriver exited at start: {status}");
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
