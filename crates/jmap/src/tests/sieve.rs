//! JMAP for Sieve Scripts (RFC 9661) over the real script store.

use super::*;

const USING_SIEVE: [&str; 2] = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:sieve"];

impl Harness {
    async fn upload(&self, body: &str) -> String {
        let uri = format!("/jmap/upload/{}/", self.aid());
        let (status, _, v) = self
            .raw(
                "POST",
                &uri,
                Some(&self.bearer()),
                "application/sieve",
                body.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["blobId"].as_str().unwrap().to_string()
    }

    async fn sieve(&self, calls: Value) -> Vec<Value> {
        let v = self.api_using(&USING_SIEVE, calls).await;
        v["methodResponses"].as_array().unwrap().clone()
    }

    async fn sieve_one(&self, name: &str, mut args: Value) -> Value {
        args["accountId"] = json!(self.aid());
        let r = self.sieve(json!([[name, args, "s"]])).await;
        assert_eq!(r[0][0], json!(name), "{}", r[0]);
        r[0][1].clone()
    }
}

#[tokio::test]
async fn scripts_are_created_activated_renamed_validated_and_destroyed() {
    let h = harness().await;
    let (_, _, session) = h
        .raw(
            "GET",
            "/jmap/session",
            Some(&h.bearer()),
            "application/json",
            vec![],
        )
        .await;
    let caps = &session["accounts"][h.aid()]["accountCapabilities"]["urn:ietf:params:jmap:sieve"];
    assert_eq!(caps["maxNumberScripts"], json!(32), "{session}");
    assert!(
        caps["sieveExtensions"]
            .as_array()
            .unwrap()
            .contains(&json!("fileinto"))
    );
    let source =
        "require \"fileinto\";\nif header :contains \"subject\" \"x\" { fileinto \"Work\"; }\n";
    let blob = h.upload(source).await;
    let before = h.sieve_one("SieveScript/get", json!({})).await;
    // Create and activate in one call (RFC 9661 §2.4 onSuccessActivateScript "#creation").
    let v = h
        .sieve_one(
            "SieveScript/set",
            json!({"create": {"s1": {"name": "rules", "blobId": blob}}, "onSuccessActivateScript": "#s1"}),
        )
        .await;
    let id = v["created"]["s1"]["id"]
        .as_str()
        .expect("created")
        .to_string();
    assert_eq!(v["created"]["s1"]["isActive"], json!(true), "{v}");
    let got = h
        .sieve_one("SieveScript/get", json!({"ids": [id.clone(), "nope"]}))
        .await;
    assert_eq!(got["list"][0]["name"], json!("rules"));
    assert_eq!(got["list"][0]["isActive"], json!(true));
    assert_eq!(got["notFound"], json!(["nope"]));
    // The blobId downloads the script.
    let blob_id = got["list"][0]["blobId"].as_str().unwrap();
    let (status, _, body) = h
        .raw(
            "GET",
            &format!(
                "/jmap/download/{}/{blob_id}/s.sieve?accept=text/plain",
                h.aid()
            ),
            Some(&h.bearer()),
            "",
            vec![],
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!(source)));
    // /changes from before: created.
    let ch = h
        .sieve_one(
            "SieveScript/changes",
            json!({"sinceState": before["state"]}),
        )
        .await;
    assert_eq!(ch["created"], json!([id.clone()]), "{ch}");
    // A broken script: validate names the problem; create refuses it.
    let bad = h.upload("require \"fileinto\";\nif header {\n").await;
    let v = h
        .sieve_one("SieveScript/validate", json!({"blobId": bad}))
        .await;
    assert_eq!(v["error"]["type"], json!("invalidSieve"), "{v}");
    assert!(
        v["error"]["description"]
            .as_str()
            .unwrap()
            .starts_with("line ")
    );
    let ok = h
        .sieve_one("SieveScript/validate", json!({"blobId": blob}))
        .await;
    assert_eq!(ok["error"], Value::Null);
    let v = h
        .sieve_one(
            "SieveScript/set",
            json!({"create": {"b": {"name": "broken", "blobId": bad}}}),
        )
        .await;
    assert_eq!(v["notCreated"]["b"]["type"], json!("invalidSieve"));
    let v = h
        .sieve_one(
            "SieveScript/set",
            json!({"create": {"d": {"name": "rules", "blobId": blob}}}),
        )
        .await;
    assert_eq!(v["notCreated"]["d"]["type"], json!("alreadyExists"));
    // The active script cannot be destroyed; rename keeps it active.
    let v = h
        .sieve_one("SieveScript/set", json!({"destroy": [id.clone()]}))
        .await;
    assert_eq!(
        v["notDestroyed"][&id]["type"],
        json!("sieveIsActive"),
        "{v}"
    );
    let v = h
        .sieve_one(
            "SieveScript/set",
            json!({"update": {id.clone(): {"name": "filters"}}}),
        )
        .await;
    assert!(v["updated"].get(&id).is_some(), "{v}");
    let q = h
        .sieve_one(
            "SieveScript/query",
            json!({"filter": {"isActive": true}, "calculateTotal": true}),
        )
        .await;
    assert_eq!(
        (q["ids"].clone(), q["total"].clone()),
        (json!([id.clone()]), json!(1))
    );
    let q = h
        .sieve_one("SieveScript/query", json!({"filter": {"name": "FILT"}}))
        .await;
    assert_eq!(q["ids"], json!([id.clone()]));
    // Deactivate, then destroy.
    let v = h
        .sieve_one(
            "SieveScript/set",
            json!({"onSuccessDeactivateScript": true}),
        )
        .await;
    assert_eq!(v["updated"][&id]["isActive"], json!(false), "{v}");
    let v = h
        .sieve_one("SieveScript/set", json!({"destroy": [id.clone()]}))
        .await;
    assert_eq!(v["destroyed"], json!([id]));
    // Without the capability in `using` the methods are unknown.
    let (n, v) = h.call("SieveScript/get", json!({})).await;
    assert_eq!(
        (n.as_str(), v["type"].as_str()),
        ("error", Some("unknownMethod"))
    );
}
