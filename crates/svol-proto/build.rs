//! Compiles `proto/svol.proto` with protox, so no system `protoc` is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/svol.proto");
    let fds = protox::compile(["svol.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .bytes(".svol.v1")
        .compile_fds(fds)?;
    Ok(())
}
