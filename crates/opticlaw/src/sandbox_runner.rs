//! The sandbox behind the `shell` tool, as `[sandbox] runner` chooses.

use std::sync::Arc;

use opticlaw_sandbox::microvm::{self, Assets, MicroVmConfig, MicroVmSandbox};
use opticlaw_sandbox::{NamespaceSandbox, Sandbox};

use crate::config::{SandboxRunner, SandboxSection};
use crate::home::Home;

/// Builds the configured runner, or says why it cannot run here (the
/// caller then offers no shell tool at all: fail closed, never a weaker
/// runner than the one configured).
pub fn build(section: &SandboxSection, home: &Home) -> Result<Arc<dyn Sandbox>, String> {
    match section.runner {
        SandboxRunner::Namespace => NamespaceSandbox::new()
            .map(|s| Arc::new(s) as Arc<dyn Sandbox>)
            .map_err(|e| e.to_string()),
        SandboxRunner::Microvm => {
            let mut config = MicroVmConfig::new(home.data_dir());
            config.assets = Some(microvm_assets(section)?);
            let vm = MicroVmSandbox::with_config(config).map_err(|e| e.to_string())?;
            let (accel, why) = vm.accelerator();
            tracing::info!(
                accelerator = accel.name(),
                why_not_kvm = why,
                "shell commands run in microVMs"
            );
            Ok(Arc::new(vm))
        }
    }
}

/// The microVM's files: from `[sandbox] microvm_dir`, else located.
pub fn microvm_assets(section: &SandboxSection) -> Result<Assets, String> {
    match &section.microvm_dir {
        Some(dir) => Assets::in_dir(dir),
        None => Assets::locate(),
    }
}

/// One line on whether the microVM runner can start here (nothing booted):
/// `Ok` with the accelerator it would use, or `Err` with what is missing.
pub fn microvm_summary(section: &SandboxSection) -> Result<String, String> {
    let assets = microvm_assets(section)?;
    let accel = match microvm::kvm_usable() {
        Ok(()) => "kvm".to_owned(),
        Err(why) => format!("tcg, several times slower than kvm ({why})"),
    };
    Ok(format!(
        "available: {} boots {} with {accel}",
        assets.qemu.display(),
        assets.kernel.display()
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    #[test]
    fn the_runner_is_chosen_in_config_and_a_bad_name_is_refused() {
        let config =
            Config::parse("[sandbox]\nrunner = \"microvm\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(config.sandbox.runner, SandboxRunner::Microvm);
        assert_eq!(Config::default().sandbox.runner, SandboxRunner::Namespace);
        let err = Config::parse("[sandbox]\nrunner = \"firecracker\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("firecracker") && err.contains("microvm"),
            "{err}"
        );
    }

    #[test]
    fn a_microvm_dir_without_the_parts_says_what_is_missing() {
        let empty = tempfile::tempdir().unwrap();
        let section = SandboxSection {
            runner: SandboxRunner::Microvm,
            microvm_dir: Some(empty.path().to_path_buf()),
        };
        let err = microvm_summary(&section).unwrap_err();
        assert!(
            err.contains(&empty.path().display().to_string()) || err.contains("qemu"),
            "{err}"
        );
    }
}
