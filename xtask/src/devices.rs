//! `cargo xtask devices`: what each backend of this build sees.

use sd_train::Backend;

pub fn run() -> anyhow::Result<()> {
    for backend in [Backend::Flex, Backend::Ndarray, Backend::Wgpu] {
        let devices = backend.devices();
        println!("{backend}: {} device(s)", devices.len());
        for (i, device) in devices.iter().enumerate() {
            println!("  --backend {backend} --device {i}: {device:?}");
        }
    }
    Ok(())
}
