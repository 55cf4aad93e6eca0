"""One module per command; importing this package registers them all."""

from clinfusion.cli.commands import (  # noqa: F401
    embed,
    evaluate,
    explain,
    finetune,
    predict,
    pretrain,
    validate,
)
