//! `cargo xtask devices`: the adapters and devices each backend of this build
//! sees, with the flags that pick each one.

use sd_train::Backend;

pub fn run() -> anyhow::Result<()> {
    for backend in [Backend::Flex, Backend::Ndarray, Backend::Wgpu] {
        let devices = backend.devices();
        println!("{backend}: {} device(s)", devices.len());
        for (i, device) in devices.iter().enumerate() {
            // Cube devices (wgpu) name their adapter; CPU backends name none.
            let adapter = match device.identity() {
                Some(identity) => {
                    let card = match identity
                        .physical
                        .as_ref()
                        .and_then(|p| p.pci_address.as_ref())
                    {
                        Some(pci) => format!(", PCI {pci:?}"),
                        None => ", no card (CPU or software driver)".to_string(),
                    };
                    format!("{} [{}{card}]", identity.name, identity.fingerprint)
                }
                None => "the CPU".to_string(),
            };
            println!("  --backend {backend} --device {i}: {adapter}  ({device:?})");
        }
        if devices.is_empty() && backend == Backend::Wgpu {
            println!(
                "  no adapter: install a GPU driver with Vulkan (or Mesa's lavapipe, \
                 `.ci/install-lavapipe`), or use --backend flex"
            );
        }
    }
    Ok(())
}
