//! Embeds the LibTorch library directory as an rpath, so the test binaries find
//! `libtorch_cpu.so` without `LD_LIBRARY_PATH`.

fn main() {
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
}
