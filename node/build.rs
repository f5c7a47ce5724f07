//! Compiles the AOTInductor shim (`cpp/aoti_shim.cpp`) against the LibTorch
//! that torch-sys links, whose library folder torch-sys passes on as
//! `DEP_TCH_LIBTORCH_LIB` (its headers sit beside it in `include`), and
//! embeds that folder as an rpath, so the binary finds `libtorch_cpu.so`
//! without `LD_LIBRARY_PATH`. It also records where ONNX Runtime's library
//! is when the same Python environment holds PyPI's `onnxruntime`
//! (`MAAS_ONNXRUNTIME_LIB`, the node's default for `--onnxruntime-lib`).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=cpp/aoti_shim.cpp");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys names LibTorch's lib folder"));
    let root = lib.parent().expect("LibTorch's lib folder has a parent").to_path_buf();
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        // PyPI's LibTorch (2.7 and later) is built with the C++11 ABI.
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("GLOG_USE_GLOG_EXPORT", None)
        .file("cpp/aoti_shim.cpp")
        .compile("maas_aoti");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    // A package's compiled model needs libtorch.so, which nothing else
    // links; the node loads it from here before the first package.
    println!("cargo:rustc-env=MAAS_LIBTORCH_LIB_DIR={}", lib.display());
    if let Some(onnxruntime) = onnxruntime_beside(&root) {
        println!("cargo:rustc-env=MAAS_ONNXRUNTIME_LIB={}", onnxruntime.display());
    }
}

/// `libonnxruntime.so.*` of the `onnxruntime` package installed beside
/// `torch` (both in one `site-packages`), if there is one.
fn onnxruntime_beside(torch_root: &std::path::Path) -> Option<PathBuf> {
    let capi = torch_root.parent()?.join("onnxruntime/capi");
    println!("cargo:rerun-if-changed={}", capi.display());
    let mut found: Vec<PathBuf> = std::fs::read_dir(&capi)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so")))
        .collect();
    found.sort();
    found.pop()
}
