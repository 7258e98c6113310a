"""Training speed in target tokens per second, with Lightning's own `ThroughputMonitor`."""

import warnings

from lightning.pytorch.callbacks import ThroughputMonitor

from src.data.batch import Batch
from src.data.vocab import PAD_ID


def target_tokens(batch: Batch) -> int:
    """Real target tokens, <eos> included: what the loss is computed over."""
    return int((batch.tgt_out != PAD_ID).sum())


class TargetTokenThroughput(ThroughputMonitor):
    """`ThroughputMonitor` counting sentences as samples and real target tokens as items.

    Logs, averaged over the last `window_size` batches, `train/device/items_per_sec` (target tokens per
    second), `train/device/samples_per_sec` (sentences) and `train/device/batches_per_sec`; with several
    devices also the totals, without `device/`. (Validation and test get the same under their stage
    name once they run `window_size` batches.)
    """

    def __init__(self, window_size: int = 50) -> None:
        super().__init__(batch_size_fn=len, length_fn=target_tokens, window_size=window_size)
        # tokens per second is the speed that matters here; Lightning would ask for the FLOPs per batch too
        warnings.filterwarnings("ignore", message=r".*`flops_per_batch`.*")
