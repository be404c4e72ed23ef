//! Makes sure `web/dist` exists so the crate compiles before the web client was built
//! (`cd web && npm run build`). A placeholder page says how to build the real one.

use std::path::Path;

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    println!(
        "cargo:rerun-if-changed={}",
        dist.join("index.html").display()
    );
    println!("cargo:rerun-if-changed={}", dist.join("assets").display());
    if !dist.join("index.html").exists() {
        let page = "<!doctype html><meta charset=utf-8><title>Bulwark</title>\
            <p>The web client was not built. Run <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>, \
            then rebuild bulwark.</p>";
        if std::fs::create_dir_all(&dist).is_ok() {
            let _ = std::fs::write(dist.join("index.html"), page);
        }
    }
}
