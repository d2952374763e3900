//! Performance kernels: burn backend extensions for f32 tensors on the flex CPU backend, each
//! with its own backward pass and a fallback to burn's op for other dtypes and backends.
//!
//! Architectures (`nets/mlp.rs`, `nets/unet.rs`) call the op wrappers ([`fused::silu`],
//! [`fused::group_norm`], [`fused::up2`], [`fused::down2`], [`conv::conv2d_same`]); a backbone
//! author never needs to edit this folder. A new kernel goes in its own file here with a
//! "Why:" paragraph giving the measured gap, a fallback path, and a test of both paths against
//! each other, forward and backward, on odd shapes.

pub mod conv;
mod direct;
pub mod fused;

use burn::backend::autodiff::Autodiff;
use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::DType;
use burn_flex::FlexTensor;
use std::borrow::Cow;
use std::mem::MaybeUninit;

/// Allocates `n` f32 without the zero-filling pass of `vec![0.0; n]` (which glibc's calloc
/// cannot skip for reused heap memory: 12 % of a U-Net step under `perf`) and lets `init`
/// write them; nothing is read before it is written because `init` sees `MaybeUninit`s.
///
/// # Safety
/// `init` must write every element of the slice it is given.
pub(crate) unsafe fn alloc_init(n: usize, init: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    init(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the caller's `init` initialised all n elements.
    unsafe { v.set_len(n) };
    v
}

/// The initialised view of a slice of `MaybeUninit`s.
///
/// # Safety
/// Every element must have been written.
pub(crate) unsafe fn assume_init_mut(s: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: MaybeUninit<f32> has f32's layout, and the caller guarantees initialisation.
    unsafe { &mut *(s as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Runs `f` inlined into a copy compiled for AVX-512 or AVX2+FMA when the CPU has them (the
/// crate itself targets baseline x86-64), so the element-wise loops inside are vectorised.
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
        unsafe fn v4<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn v3<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq") {
            // SAFETY: the CPU supports the features v4 is compiled for.
            return unsafe { v4(f) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: as above, for v3.
            return unsafe { v3(f) };
        }
    }
    f()
}

/// Contiguous f32 view of a flex tensor (copying only when it is strided).
pub(crate) fn f32s(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("f32 tensor").to_vec()),
    }
}

pub(crate) fn flex_tensor(v: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape))
}

/// Whether a tensor is f32 on the flex backend (directly or under autodiff), i.e. whether the
/// fused kernels apply.
pub fn fusable<const D: usize>(t: &Tensor<D>) -> bool {
    use burn::backend::DispatchTensorKind as K;
    fn kind_is_flex(k: &K) -> bool {
        match k {
            K::Flex(_) => true,
            K::Autodiff(inner) => kind_is_flex(inner),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
    t.dtype() == DType::F32 && kind_is_flex(&t.clone().into_dispatch().kind)
}

/// The flex primitive of a fusable tensor (shares its storage; no copy).
pub fn flex_primitive<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    if let Ok(p) = t.clone().try_into_primitive::<Flex>() {
        return Some(p);
    }
    t.clone()
        .try_into_primitive::<Autodiff<Flex>>()
        .ok()
        .map(|p| p.primitive().clone())
}
