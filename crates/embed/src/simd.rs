//! The vector instruction sets the kernels ([`crate::matrix`], the dense layers) are compiled
//! for, each found at run time.

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx512, V4Vnni};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use pulp::core_arch::x86::{Avx512bw, Avx512f, Sse};

    pulp::simd_type! {
        /// AVX-512 with its vector neural-network instructions: code compiled for it has a
        /// multiply of 16-bit pairs followed by an add (`vpmaddwd`, `vpaddd`) turned into one
        /// `vpdpwssd` by the compiler, twice the integer products an instruction.
        pub struct V4Vnni {
            pub sse: "sse", pub sse2: "sse2", pub fxsr: "fxsr", pub sse3: "sse3",
            pub ssse3: "ssse3", pub sse4_1: "sse4.1", pub sse4_2: "sse4.2", pub popcnt: "popcnt",
            pub avx: "avx", pub avx2: "avx2", pub bmi1: "bmi1", pub bmi2: "bmi2", pub fma: "fma",
            pub lzcnt: "lzcnt", pub avx512f: "avx512f", pub avx512bw: "avx512bw",
            pub avx512cd: "avx512cd", pub avx512dq: "avx512dq", pub avx512vl: "avx512vl",
            pub avx512vnni: "avx512vnni",
        }
    }

    /// AVX-512, with or without VNNI: the parts of it the kernels use, so one kernel serves both.
    pub(crate) trait Avx512: Copy {
        fn f(self) -> Avx512f;
        fn bw(self) -> Avx512bw;
        fn sse(self) -> Sse;
    }

    /// Both types hold the same AVX-512 tokens.
    macro_rules! avx512 {
        ($($simd:ty),*) => {$(
            impl Avx512 for $simd {
                #[inline(always)]
                fn f(self) -> Avx512f {
                    self.avx512f
                }

                #[inline(always)]
                fn bw(self) -> Avx512bw {
                    self.avx512bw
                }

                #[inline(always)]
                fn sse(self) -> Sse {
                    self.sse
                }
            }
        )*};
    }

    avx512!(pulp::x86::V4, V4Vnni);
}
