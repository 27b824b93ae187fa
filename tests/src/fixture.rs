//! The fixture Lambda: built once per test run as a static binary, packaged as a zip or an image.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The fixture binary, statically linked (a `FROM scratch` image has no libc to load).
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "-p", "fixture-fn", "--target", TARGET])
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .env("CARGO_TARGET_DIR", target_dir())
            .current_dir(workspace_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the fixture function failed");
        target_dir().join(TARGET).join("debug").join("fixture-fn")
    })
}

/// The fixture image's build context: `rootfs/var/runtime/bootstrap`, prepared once per test binary.
/// The file and its folders carry the binary's mtime, so every image of one binary has the same layer (one
/// blob in the registry, one unpacked tree in local AWS), as an image rebuilt from an unchanged context does;
/// the images still differ by their config (the build arguments become `ENV`).
pub fn context() -> &'static Path {
    static CONTEXT: OnceLock<PathBuf> = OnceLock::new();
    CONTEXT.get_or_init(|| {
        let context = target_dir().join("fixture-context");
        let runtime = context.join("rootfs/var/runtime");
        std::fs::create_dir_all(&runtime).expect("context dir");
        // Copy, then rename over: another test binary's build may be reading the old file.
        let tmp = runtime.join(crate::unique("bootstrap"));
        std::fs::copy(binary(), &tmp).expect("copy fixture");
        std::fs::rename(&tmp, runtime.join("bootstrap")).expect("place fixture");
        let built = std::fs::metadata(binary()).and_then(|m| m.modified()).expect("fixture mtime");
        for path in [runtime.join("bootstrap"), runtime.clone(), context.join("rootfs/var"), context.join("rootfs")] {
            std::fs::File::open(&path).and_then(|f| f.set_modified(built)).expect("set the context's mtimes");
        }
        context
    })
}

/// A provided.al2023 zip package: the fixture as `bootstrap`.
pub fn zip() -> Vec<u8> {
    let bytes = std::fs::read(binary()).expect("fixture binary");
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options).expect("zip entry");
    zip.write_all(&bytes).expect("zip write");
    zip.finish().expect("zip finish");
    out.into_inner()
}

/// Build the fixture image (its `FIXTURE_VARIANT` set to `variant`) and push it to local ECR as
/// `repo:tag`. Returns the pushed manifest digest.
pub fn push_image(repo: &str, tag: &str, variant: &str) -> String {
    push_image_with(repo, tag, &[("VARIANT", variant)])
}

/// As [`push_image`], with any of the Dockerfile's build arguments (VARIANT, BROKEN, INIT).
pub fn push_image_with(repo: &str, tag: &str, args: &[(&str, &str)]) -> String {
    build_and_push(repo, tag, args, false)
}

/// As [`push_image`], keeping the image in buildah's storage as `repo:tag` afterwards, for a test that
/// pushes it again elsewhere at a moment of its choosing (`scripts/build-image` may remove it otherwise).
pub fn stage_image(repo: &str, tag: &str, variant: &str) -> String {
    build_and_push(repo, tag, &[("VARIANT", variant)], true)
}

fn build_and_push(repo: &str, tag: &str, args: &[(&str, &str)], keep: bool) -> String {
    let out = build_image(repo, tag, args).args(keep.then_some("--keep")).output().expect("scripts/build-image runs");
    assert!(out.status.success(), "scripts/build-image failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 digest").trim().to_string()
}

/// `scripts/build-image` building the fixture image as `repo:tag` with these build arguments and pushing it
/// to local ECR's `repo:tag`; add `--keep` or a `BUILDAH_ROOT` before running it.
pub fn build_image(repo: &str, tag: &str, args: &[(&str, &str)]) -> Command {
    let mut command = Command::new(workspace_root().join("scripts/build-image"));
    command
        .arg("--file")
        .arg(workspace_root().join("tests/fixture-fn/Dockerfile"))
        .arg("--context")
        .arg(context())
        .args(["--name", &format!("{repo}:{tag}")])
        .args(args.iter().flat_map(|(k, v)| ["--build-arg".to_string(), format!("{k}={v}")]))
        .args(["--push", &format!("{}/{repo}:{tag}", crate::sdk::registry())])
        .arg("--insecure");
    command
}

/// The buildah storage `scripts/build-image` uses: `$BUILDAH_ROOT`, or `buildah` in the target dir.
pub fn buildah_root() -> PathBuf {
    std::env::var_os("BUILDAH_ROOT").map(PathBuf::from).unwrap_or_else(|| target_dir().join("buildah"))
}

/// `buildah` on the storage under `root`, as `scripts/build-image` opens it; add the subcommand.
pub fn buildah(root: &Path) -> Command {
    let mut command = Command::new("buildah");
    command
        .arg("--root")
        .arg(root.join("root"))
        .arg("--runroot")
        .arg(root.join("run"))
        .args(["--storage-driver", "vfs"]);
    command
}
