//! The dashboard in headless Chromium, driven over WebDriver (plain JSON calls to
//! chromedriver): the list renders, a backup is created and its progress bar reaches
//! 100 %, a restore asks for the typed phrase. Screenshots go to target/screenshots/.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{final_result, Workspace, TOKEN};
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (Debian package chromium-driver)");
        let mut driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1100,800",
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": args}}}});
        let session = driver.call("POST", "/session", Some(caps)).await;
        driver.session = session["sessionId"].as_str().unwrap().to_string();
        driver
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = if path == "/session" {
            format!("{}/session", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(body.unwrap_or(json!({})).to_string()),
        };
        let text = req.send().await.unwrap().text().await.unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert!(
            value["value"]["error"].is_null(),
            "webdriver {path}: {text}"
        );
        value["value"].clone()
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Polls `condition` (a JS expression) until it is true; the deadline only stops a
    /// hung test.
    async fn wait_for(&self, condition: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.script(&format!("return !!({condition});")).await != json!(true) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {condition}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found[ELEMENT].as_str().unwrap().to_string()
    }

    async fn click(&self, css: &str) {
        let el = self.element(css).await;
        self.call("POST", &format!("/element/{el}/click"), None)
            .await;
    }

    async fn type_text(&self, css: &str, text: &str) {
        let el = self.element(css).await;
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.call("GET", "/screenshot", None).await;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, base64_decode(png.as_str().unwrap())).unwrap();
        path
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_lists_creates_with_progress_and_asks_for_the_restore_phrase() {
    let ws = Workspace::new(false, true);
    let server = ws.serve(&[]);
    let first = server
        .run_job("/api/workspaces/shop/backups", &json!({"label": "nightly"}))
        .await;
    assert_eq!(final_result(&first)["ok"], true);

    let driver = Driver::start().await;
    driver
        .call("POST", "/url", Some(json!({"url": server.url("/")})))
        .await;
    // A wrong token: the error is shown with its hint.
    driver.type_text("#token", "wrong-token").await;
    driver.click("#connect").await;
    driver
        .wait_for("!document.getElementById('errors').classList.contains('hidden')")
        .await;
    let hint = driver
        .script("return document.getElementById('error-hint').textContent;")
        .await;
    assert!(
        hint.as_str()
            .unwrap()
            .starts_with("Hint: send `Authorization: Bearer"),
        "{hint}"
    );
    driver.screenshot("00-error-with-hint.png").await;

    driver
        .script("document.getElementById('token').value = '';")
        .await;
    driver.type_text("#token", TOKEN).await;
    driver.click("#connect").await;
    driver
        .wait_for("document.querySelectorAll('#backups tbody tr').length === 1 && document.querySelectorAll('.scope').length === 2")
        .await;
    let label = driver
        .script("return document.querySelector('#backups tbody tr td:nth-child(2)').textContent;")
        .await;
    assert_eq!(label, "nightly");
    driver.screenshot("01-list.png").await;

    driver.type_text("#label", "from the browser").await;
    driver.click("#create-button").await;
    driver
        .wait_for("document.querySelector('.job[data-done]')")
        .await;
    let job = driver
        .script("const j = document.querySelector('.job'); return [j.dataset.done, j.querySelector('.bar > div').style.width];")
        .await;
    assert_eq!(job, json!(["ok", "100%"]));
    driver
        .wait_for("document.querySelectorAll('#backups tbody tr').length === 2")
        .await;
    driver.screenshot("02-created.png").await;

    driver
        .click("#backups tbody tr:first-child button.restore")
        .await;
    driver
        .wait_for("!document.getElementById('dialog').classList.contains('hidden')")
        .await;
    let phrase = driver
        .script("return document.getElementById('phrase').textContent;")
        .await;
    let newest = driver
        .script("return document.querySelector('#backups tbody tr:first-child').dataset.name;")
        .await;
    assert_eq!(
        phrase, newest,
        "a restore of several services asks for the bundle's name"
    );
    let disabled = "return document.getElementById('confirm-button').disabled;";
    assert_eq!(driver.script(disabled).await, json!(true));
    driver.type_text("#confirm-input", "yes").await;
    assert_eq!(
        driver.script(disabled).await,
        json!(true),
        "a wrong phrase does not enable Restore"
    );
    driver
        .script("document.getElementById('confirm-input').value = '';")
        .await;
    driver
        .type_text("#confirm-input", phrase.as_str().unwrap())
        .await;
    assert_eq!(driver.script(disabled).await, json!(false));
    driver.screenshot("03-restore-confirm.png").await;
    let _ = driver.call("DELETE", "", None).await;
}
