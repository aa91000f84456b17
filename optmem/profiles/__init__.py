"""Reader profiles: the image and text cost of the model that reads a context, its request limits
and the page images worth sending to it (docs/profiles.md)."""

from optmem.profiles.builtin import BUILTIN
from optmem.profiles.costs import (
    Claude,
    CostRule,
    DeepSeekNative,
    DeepSeekVllm,
    Gemini,
    NoImages,
    OpenAIPatch,
    OpenAITile,
    QwenVL,
    crop_grid,
)
from optmem.profiles.profile import (
    BoundedText,
    ExactText,
    Limits,
    Profile,
    Rung,
    TextCounter,
    UnknownProfile,
    image_worth_sending,
    load_profile,
    profile_to_toml,
    rungs_worth_sending,
    text_tokens_for_image_worth,
)
from optmem.profiles.tokenizers import TOKENIZER_NAMES, TokenizerUnavailable, tokenizer

__all__ = [
    "BUILTIN",
    "TOKENIZER_NAMES",
    "BoundedText",
    "Claude",
    "CostRule",
    "DeepSeekNative",
    "DeepSeekVllm",
    "ExactText",
    "Gemini",
    "Limits",
    "NoImages",
    "OpenAIPatch",
    "OpenAITile",
    "Profile",
    "QwenVL",
    "Rung",
    "TextCounter",
    "TokenizerUnavailable",
    "UnknownProfile",
    "crop_grid",
    "image_worth_sending",
    "load_profile",
    "profile_to_toml",
    "rungs_worth_sending",
    "text_tokens_for_image_worth",
    "tokenizer",
]
