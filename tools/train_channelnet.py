"""Train the bundled `fluorescence_nuclei_and_cells` ChannelNet model (resumable; run in the background).

    python tools/train_channelnet.py --out runs/channelnet --minutes 600 [--resume]

Only CC0 data, so the weights can be released without a non-commercial clause: nucleus maps from
dsb2018_brightfield (its histology tiles: tissue layouts; taken as 0.25 µm/px) and dsb2018_fluo (0.5 µm/px)
seed the synthetic multiplexed images; dsb2018_fluo adds real single-channel nucleus images. Starts from the
bundled fluorescence_nuclei model (trained on dsb2018_fluo), or (``--init fluorescence_nuclei_and_cells``) goes on
from the bundled ChannelNet model.
"""

from __future__ import annotations

import argparse
import json

from phenoseg.training.channelnet import RECIPE, ChannelNetTrainOptions, train_channelnet

DATA = "../shared/data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float)
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--val-minutes", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=160)
    ap.add_argument("--init", default=RECIPE["init"],
                    help="model to start from: a nucleus model, or a ChannelNet model to go on training")
    ap.add_argument("--channels", type=int, nargs=2, default=[1, 12], metavar=("MIN", "MAX"),
                    help="channel count range of the synthetic images")
    args = ap.parse_args()
    d = args.data
    opts = ChannelNetTrainOptions(
        out=args.out,
        nucleus_data=[f"{d}/{n}" for n in RECIPE["nucleus_data"]],
        real_data=[f"{d}/{n}" for n in RECIPE["real_data"]],
        data_pixel_size=dict(RECIPE["data_pixel_size"]),
        minutes=args.minutes, max_steps=args.max_steps, resume=args.resume, init=args.init,
        val_minutes=args.val_minutes, batch=args.batch, crop=args.crop,
        channels=tuple(args.channels),
    )
    print(json.dumps(train_channelnet(opts), indent=1, default=str))


if __name__ == "__main__":
    main()
