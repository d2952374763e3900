//! Stand-in for `cubecl-llvm` 0.11.3: the items cubecl-cuda 0.11.3 names, without the LLVM
//! backend behind them. Why: see README.md next to this crate's Cargo.toml (in short, the real
//! crate downloads LLVM at build time; cubecl-cuda's NVRTC compiler, the one used, needs none
//! of it).

use cubecl_core::prelude::KernelDefinition;
use cubecl_environment::backtrace::BackTrace;
use cubecl_runtime::compiler::CompilationError;
use cubecl_runtime::kernel::BufferIOAttr;

/// The message every LLVM entry point of the stand-in gives: what is missing and how to get
/// the working path back.
pub const UNAVAILABLE: &str = "cubecl-llvm stand-in (consistency-models vendor/cubecl-llvm-stub): \
the LLVM/NVPTX kernel compiler is not built in, because the real cubecl-llvm downloads LLVM at \
build time. Use cubecl-cuda's CUDA C++ (NVRTC) compiler: enable cubecl-cuda's `cpp` feature \
(the `cuda` feature of consistency-models does).";

/// The error `PlironCompiler::compile` returns.
pub fn unavailable() -> CompilationError {
    CompilationError::Generic {
        reason: UNAVAILABLE.to_string(),
        backtrace: BackTrace::capture(),
    }
}

/// Where the LLVM backend would generate code. Same variants as the real crate's (those of
/// its features), so matches in cubecl-cuda stay exhaustive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LlvmTarget {
    #[default]
    Cpu,
    #[cfg(feature = "amdgpu")]
    AmdGpu,
    #[cfg(feature = "nvptx")]
    Nvptx,
}

/// Options of the LLVM compiler. Only the fields cubecl-cuda sets; none is read.
#[derive(Clone, Debug, Default)]
pub struct PlironOptions {
    /// AMD architecture in the real crate; always `None` from cubecl-cuda.
    pub arch: Option<String>,
    #[cfg(feature = "nvptx")]
    pub sm_arch: Option<cubecl_core::ir::nvidia::SmArch>,
    #[cfg(feature = "nvptx")]
    pub ptx_version: Option<nvptx::ptx_version::PtxVersion>,
    pub grid_constants: bool,
}

/// A compiled NVPTX module. Never produced by the stand-in; the fields are those cubecl-cuda
/// reads.
#[cfg(feature = "nvptx")]
#[derive(Clone, Debug)]
pub struct NvptxModule {
    /// NUL-terminated PTX assembly.
    pub ptx: Vec<core::ffi::c_char>,
    /// Kernel entry point symbol.
    pub entrypoint: String,
    pub ir: String,
    pub shared_memory_size: usize,
    pub io: Vec<BufferIOAttr>,
}

/// What the compiler produces. `Unavailable` keeps the enum non-empty without `nvptx`, and
/// keeps cubecl-cuda's `_ => unreachable!` arm reachable in type terms, as in the real crate.
#[derive(Clone, Debug)]
pub enum PlironArtifact {
    #[cfg(feature = "nvptx")]
    NvptxCode(NvptxModule),
    Unavailable,
}

/// The LLVM compiler. Every compilation fails with [`unavailable`].
#[derive(Clone, Debug, Default)]
pub struct PlironCompiler {
    pub target: LlvmTarget,
}

impl PlironCompiler {
    /// Always `Err(unavailable())`: the stand-in has no LLVM.
    pub fn compile(
        &mut self,
        _kernel: KernelDefinition,
        _options: &PlironOptions,
    ) -> Result<PlironArtifact, CompilationError> {
        Err(unavailable())
    }

    /// The real crate's tag for the GPU targets (part of kernel cache keys).
    pub fn lang_tag(&self) -> &'static str {
        match self.target {
            LlvmTarget::Cpu => "mlir",
            #[allow(unreachable_patterns)]
            _ => "llvm",
        }
    }
}

#[cfg(feature = "nvptx")]
pub mod nvptx {
    pub mod ptx_version {
        //! Copied from cubecl-llvm 0.11.3 (`src/nvptx/ptx_version.rs`): cubecl-cuda calls
        //! `for_driver` at start-up whichever compiler is selected, and uses the result in
        //! kernel cache keys of the LLVM path.
        use core::fmt;

        /// A PTX ISA version, e.g. 9.0 as `PtxVersion(90)`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct PtxVersion(u32);

        impl PtxVersion {
            /// The newest PTX version a driver (`cuDriverGetVersion`, e.g. 12080) loads.
            pub fn for_driver(driver: i32) -> Option<Self> {
                DRIVER_PTX
                    .iter()
                    .find(|(first_driver, _)| driver >= *first_driver)
                    .map(|(_, ptx)| Self(*ptx))
            }
        }

        impl fmt::Display for PtxVersion {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "ptx{}", self.0)
            }
        }

        /// (first driver version, newest PTX it loads), newest first.
        const DRIVER_PTX: &[(i32, u32)] = &[
            (13030, 93),
            (13020, 92),
            (13010, 91),
            (13000, 90),
            (12090, 88),
            (12080, 87),
            (12050, 85),
            (12040, 84),
            (12030, 83),
            (12020, 82),
            (12010, 81),
            (12000, 80),
            (11080, 78),
            (11070, 77),
            (11060, 76),
            (11050, 75),
            (11040, 74),
            (11030, 73),
            (11020, 72),
            (11010, 71),
            (11000, 70),
            (10020, 65),
            (10010, 64),
            (10000, 63),
        ];
    }
}

pub mod shared {
    pub mod lowered_features {
        use cubecl_core::ir::DeviceProperties;

        /// The GPU the LLVM backend would lower for.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum GpuTarget {
            #[cfg(feature = "nvptx")]
            Nvptx,
        }

        /// cubecl-cuda calls this only when the LLVM compiler is the default, i.e. without
        /// its `cpp` feature; then no kernel could compile, so stop at start-up and say why.
        pub fn restrict_features(_props: &mut DeviceProperties, _target: GpuTarget) {
            panic!("{}", crate::UNAVAILABLE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_llvm_path_says_it_is_not_built_in_and_what_to_use() {
        let msg = unavailable().to_string();
        assert!(msg.contains("LLVM/NVPTX kernel compiler is not built in"), "{msg}");
        assert!(msg.contains("`cpp` feature"), "{msg}");
    }

    #[cfg(feature = "nvptx")]
    #[test]
    fn the_ptx_table_is_the_real_crates() {
        use nvptx::ptx_version::PtxVersion;
        assert_eq!(PtxVersion::for_driver(12080).unwrap().to_string(), "ptx87");
        assert_eq!(PtxVersion::for_driver(13000).unwrap().to_string(), "ptx90");
        assert_eq!(PtxVersion::for_driver(8000), None);
    }
}
