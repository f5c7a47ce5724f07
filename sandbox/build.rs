//! Embeds the LibTorch library directory as an rpath, so the binary finds
//! `libtorch_cpu.so` without `LD_LIBRARY_PATH`.

fn main() {
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
}
