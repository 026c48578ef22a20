//! The `svol` binary: the command line of the `svol` library.

fn main() {
    svol::main(svol::Invocation::from_env())
}
