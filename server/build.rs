//! Compiles every `.proto` under `proto/` with protox (pure Rust: no system
//! protoc needed) and generates tonic code (tonic-prost-build) plus a file descriptor set for
//! server reflection. Also tells cargo to rebuild when the console's built
//! assets (`console/dist`, embedded by `web::assets`) change.

use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let dist = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../console/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("linggong_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    // The API's codec answers undecodable bodies INVALID_ARGUMENT (see `src/codec.rs`).
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::codec::ApiCodec")
        .compile_fds(fds)?;
    Ok(())
}
