"""The TensorRT releases this toolkit knows, in one table, and the one TensorRT version parser.

Each ``TensorRTRelease`` says what that release adds: features the exporters and engines ask about
(``has(version, feature)``, ``since(feature)``), and, for the releases whose onnx-tensorrt parser the
static check encodes (exporters/tensorrt_compat.py), the parser's additions.  Every "since" fact is
derived from the table, so a new TensorRT release is one new entry (docs/architecture.md shows one):

- the export targets accept it (``tensorrt=MAJOR.MINOR``; a new major widens the supported range);
- with ``parser`` rules it becomes a pin of the static check, which then applies its rules to that
  release and to the minor releases after it;
- the builder's feature checks (strongly typed flag, IAttention layers, oldest GPU ...) read its features.

The table is read on every call (never copied into module constants elsewhere), so a test can add a
made-up release and watch it flow through.  The core imports no TensorRT and no ONNX: parser types
are ONNX ``TensorProto`` names, mapped to numbers by the static check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

Version = tuple[int, int]

# ---- features ---------------------------------------------------------------------------------------
#: The ONNX parser imports the opset-23 Attention op (exporters: the fused attention form, default opset 23).
ATTENTION_OP = "attention-op"
#: The ONNX parser imports the opset-23 RMSNormalization op.
RMS_NORMALIZATION_OP = "rms-normalization-op"
#: The parser's Attention takes 3-D Q/K/V (reshaped by q_num_heads/kv_num_heads) and masks of any rank up to 4;
#: the first release with the op documents 4-D inputs and a 4-D mask only.
ATTENTION_ANY_RANK = "attention-any-rank"
#: The parser no longer requires a DequantizeLinear output_dtype to equal its zero point's type.
DEQUANTIZE_OUTPUT_DTYPE_FREE = "dequantize-output-dtype-free"
#: IAttention layers (LayerType.ATTENTION_INPUT, IAttention.decomposable) exist.
ATTENTION_LAYER = "attention-layer"
#: NetworkDefinitionCreationFlag.STRONGLY_TYPED is deprecated and ignored: every network is strongly typed.
ALWAYS_STRONGLY_TYPED = "always-strongly-typed"
#: Volta (compute capability 7.0) is no longer supported: the oldest GPU is Turing (7.5).
NO_VOLTA = "no-volta"
#: HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY exists.
SAME_COMPUTE_CAPABILITY_LEVEL = "same-compute-capability-level"


@dataclass(frozen=True)
class ParserRules:
    """What the static check encodes of one release's ONNX parser (onnx/onnx-tensorrt at the pin named in
    exporters/tensorrt_compat.py): what it adds to the previous pin."""

    #: the static check's name for this rule set ("10.14", or "11" for every 11.x)
    name: str
    #: ops with a builtin importer that the previous pin lacks (onnxOpImporters.cpp, docs/operators.md "Y")
    ops_added: frozenset[str]
    #: the highest opset docs/operators.md documents ("opset 9 to opset N")
    max_documented_opset: int
    #: ONNX element types (TensorProto names) convertDtype newly maps to a TensorRT type
    types_added: frozenset[str] = frozenset()
    #: element types DequantizeLinear newly takes as quantized input
    quantized_types_added: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TensorRTRelease:
    version: Version
    #: the features this release is the first to have
    adds: frozenset[str] = frozenset()
    #: the parser rules of this release, when the static check encodes them
    parser: Optional[ParserRules] = None

    @property
    def text(self) -> str:
        return version_text(self.version)


# Ops with a builtin importer in onnxOpImporters.cpp of release/10.0 (eb43908); docs/operators.md of the
# same commit marks exactly these "Y".
_IMPORTERS_10_0 = frozenset(
    """
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike
Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor GRU Gather
GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual
GridSample GroupNormalization HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization
IsInf IsNaN LRN LSTM LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization
LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero
Not OneHot Or PRelu Pad ParametricSoftplus Pow QuantizeLinear RNN RandomNormal RandomNormalLike
RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RoiAlign
Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink
Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan
Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split()
)

# The release table, oldest first.  Sources:
# - 10.0: the oldest release built for (pyproject pins tensorrt>=10.0,<12): the first GA release with
#   strongly typed networks and IParserError.node_name()/node_operator().  Parser: release/10.0 eb43908,
#   documented opsets up to 20; convertDtype (importerUtils.cpp) maps DOUBLE FLOAT INT8 UINT8 FLOAT16
#   BFLOAT16 BOOL INT32 INT64 FLOAT8E4M3FN INT4; DequantizeLinear takes INT8, FLOAT8E4M3FN, INT4.
# - 10.5: removed Volta (10.5.0 release notes).
# - 10.9: HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY (python/src/infer/pyCore.cpp).
# - 10.14: IAttention layers; the parser (c727277) gained Attention ("Added support for the Attention
#   operator") plus the window ops, STFT and DeformConv that arrived in 10.1 .. 10.13, documents opsets up
#   to 24, and maps FLOAT4E2M1 (docs/operators.md lists it from 10.14 on; convertDtype from 10.15 fa5aa9f).
# - 10.15: the parser (fa5aa9f) gained RMSNormalization, RotaryEmbedding, TensorScatter; docs/operators.md
#   no longer limits Attention to 4-D Q/K/V and a 4-D mask (10.14 c727277 does).
# - 11.0: every network strongly typed (11.0 release notes / NvInfer.h); the parser (5ab48c5) stops comparing
#   a DequantizeLinear output_dtype with the zero point's type.  Parser rules read from the 11.1
#   pin (parsers/onnx of NVIDIA/TensorRT v11.1, 7c51a63); the 11.0 pin's files are not available to us
#   and its CHANGELOG adds only Swish and TRT_* custom ops over 10.16.
RELEASES: tuple[TensorRTRelease, ...] = (
    TensorRTRelease(
        (10, 0),
        parser=ParserRules(
            "10.0",
            _IMPORTERS_10_0,
            20,
            types_added=frozenset(
                {
                    "DOUBLE",
                    "FLOAT",
                    "INT8",
                    "UINT8",
                    "FLOAT16",
                    "BFLOAT16",
                    "BOOL",
                    "INT32",
                    "INT64",
                    "FLOAT8E4M3FN",
                    "INT4",
                }
            ),
            quantized_types_added=frozenset({"INT8", "FLOAT8E4M3FN", "INT4"}),
        ),
    ),
    TensorRTRelease((10, 5), adds=frozenset({NO_VOLTA})),
    TensorRTRelease((10, 9), adds=frozenset({SAME_COMPUTE_CAPABILITY_LEVEL})),
    TensorRTRelease(
        (10, 14),
        adds=frozenset({ATTENTION_OP, ATTENTION_LAYER}),
        parser=ParserRules(
            "10.14",
            frozenset({"Attention", "BlackmanWindow", "HammingWindow", "HannWindow", "STFT", "DeformConv"}),
            24,
            types_added=frozenset({"FLOAT4E2M1"}),
            quantized_types_added=frozenset({"FLOAT4E2M1"}),
        ),
    ),
    TensorRTRelease(
        (10, 15),
        adds=frozenset({RMS_NORMALIZATION_OP, ATTENTION_ANY_RANK}),
        parser=ParserRules("10.15", frozenset({"RMSNormalization", "RotaryEmbedding", "TensorScatter"}), 24),
    ),
    TensorRTRelease(
        (11, 0),
        adds=frozenset({ALWAYS_STRONGLY_TYPED, DEQUANTIZE_OUTPUT_DTYPE_FREE}),
        parser=ParserRules("11", frozenset({"Swish"}), 24),
    ),
)


# ---- versions -------------------------------------------------------------------------------------------
# MAJOR[.MINOR[.PATCH[.BUILD]]]; a pip post release ("10.14.1.48.post1") is its release
_MAJOR_MINOR = r"(\d+)(?:\.(\d+))?"
_VERSION = re.compile(rf"\s*{_MAJOR_MINOR}(?:\.\d+)*(?:\.?post\d*)?\s*")
_LEADING = re.compile(rf"\s*{_MAJOR_MINOR}")


def parse_tensorrt_version(text: object) -> Optional[Version]:
    """(major, minor) of a TensorRT version such as "10.8", "10.14.1.48" or "10.14.1.48.post1"; None if
    ``text`` is not one."""
    match = _VERSION.fullmatch(str(text))
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


def tensorrt_version(text: object) -> Version:
    """(major, minor) at the start of a version string ("10.14.1.48", a compute capability "8.9"); (0, 0)
    when there is none.  Lenient where ``parse_tensorrt_version`` is strict: for versions TensorRT itself
    reports."""
    match = _LEADING.match(str(text))
    return (int(match.group(1)), int(match.group(2) or 0)) if match else (0, 0)


def tensorrt_major(text: object) -> int:
    return tensorrt_version(text)[0]


def tensorrt_release(text: object) -> str:
    """ "MAJOR.MINOR" of a TensorRT version ("10.14.1.48.post1" -> "10.14"): what export targets
    (``tensorrt=10.14``) and the parser check take.  ``tensorrt.__version__`` is the pip package's
    version, which for NVIDIA's post releases (10.2.0.post1, 10.6.0.post1/.post2, 10.7.0.post1,
    10.13.3.9.post1, 10.14.1.48.post1) ends in a PEP 440 suffix those parsers refuse."""
    return version_text(tensorrt_version(text))


def version_text(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


# ---- what the table says ------------------------------------------------------------------------------
def releases() -> tuple[TensorRTRelease, ...]:
    return RELEASES


def oldest() -> Version:
    """The oldest TensorRT this toolkit builds with."""
    return RELEASES[0].version


def supported_majors() -> tuple[int, ...]:
    return tuple(sorted({release.version[0] for release in RELEASES}))


def is_supported(version: Version) -> bool:
    return version >= oldest() and version[0] in supported_majors()


def since(feature: str) -> Version:
    """The first release with ``feature``; KeyError for a feature no release adds."""
    for release in RELEASES:
        if feature in release.adds:
            return release.version
    raise KeyError(f"no TensorRT release adds {feature!r}")


def has(version: Version, feature: str) -> bool:
    """Whether TensorRT ``version`` (major, minor) has ``feature``."""
    return version >= since(feature)


def parser_releases() -> tuple[TensorRTRelease, ...]:
    """The releases whose parser rules the static check encodes, oldest first."""
    return tuple(release for release in RELEASES if release.parser is not None)


def parser_release_for(version: Version) -> Optional[TensorRTRelease]:
    """The newest encoded parser release at or before ``version`` (10.8 -> 10.0, 11.1 -> 11.0); None for a
    version outside the supported majors or older than every encoded one."""
    if version[0] not in supported_majors():
        return None
    found = [release for release in parser_releases() if release.version <= version]
    return found[-1] if found else None


def parser_release_adding(op_type: str) -> Optional[TensorRTRelease]:
    """The first encoded parser release with an importer for ``op_type``; None when none has one."""
    return next(
        (
            release
            for release in parser_releases()
            if release.parser is not None and op_type in release.parser.ops_added
        ),
        None,
    )


@dataclass(frozen=True)
class HardwareCompatibilityLevel:
    """One ``--hardware-compatibility`` level.  From the bindings (python/src/infer/pyCore.cpp): NONE and
    AMPERE_PLUS in every 10.x and 11.x release, SAME_COMPUTE_CAPABILITY from the release that adds
    SAME_COMPUTE_CAPABILITY_LEVEL; NvInfer.h: AMPERE_PLUS engines are built on Ampere or newer,
    SAME_COMPUTE_CAPABILITY ones on Turing or newer."""

    name: str
    #: the trt.HardwareCompatibilityLevel member
    member: str
    #: the oldest compute capability the building GPU may have
    oldest_gpu: Version
    #: the release-table feature that brings the level; None: every supported release has it
    feature: Optional[str] = None

    @property
    def since(self) -> Version:
        """The first TensorRT release with this level, read from the release table."""
        return oldest() if self.feature is None else since(self.feature)


HARDWARE_COMPATIBILITY_LEVELS = (
    HardwareCompatibilityLevel("none", "NONE", (0, 0)),
    HardwareCompatibilityLevel("ampere+", "AMPERE_PLUS", (8, 0)),
    HardwareCompatibilityLevel(
        "same-compute-capability", "SAME_COMPUTE_CAPABILITY", (7, 5), SAME_COMPUTE_CAPABILITY_LEVEL
    ),
)


def hardware_compatibility_level(name: str) -> Optional[HardwareCompatibilityLevel]:
    """The level called ``name``; None for a name no level has."""
    return next((level for level in HARDWARE_COMPATIBILITY_LEVELS if level.name == name), None)


def hardware_compatibility_names() -> tuple[str, ...]:
    return tuple(level.name for level in HARDWARE_COMPATIBILITY_LEVELS)


#: Version-compatible engines (BuilderFlag.VERSION_COMPATIBLE) run on the TensorRT that built them and on newer
#: releases of the same major; across majors only 10 -> 11 (and 8 -> 10, outside our range), per the 11.x
#: support matrix's engine portability notes.
VERSION_COMPATIBLE_ACROSS_MAJORS = {(10, 11)}
