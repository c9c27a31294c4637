"""Postprocessing thresholds chosen on validation data: one coordinate-descent search, used by training,
model packaging and the benchmarks.

Each target is tuned on its own (its decoding does not depend on the others'). The network runs once; the
decoder is re-run for each setting, one parameter at a time, for a few passes.
"""

from __future__ import annotations

from collections.abc import Callable

# parameter → decoder attribute (a per-target list)
DECODER_FIELDS = {"seed_threshold": "seed_thresholds", "mask_threshold": "mask_thresholds",
                  "seed_radius": "seed_radii", "iou_threshold": "iou_thresholds", "min_area": "min_areas",
                  "window": "windows"}
# parameter → PostprocessConfig field
CONFIG_FIELDS = {"seed_threshold": "seed_threshold", "mask_threshold": "mask_threshold",
                 "seed_radius": "seed_radius", "iou_threshold": "iou_threshold", "min_area": "min_area_px",
                 "window": "window"}
FULL_GRID = {
    "seed_threshold": [0.3, 0.4, 0.5, 0.6, 0.7],
    "mask_threshold": [0.3, 0.4, 0.5, 0.6],
    "seed_radius": [1, 2, 3, 4],
    "iou_threshold": [0.2, 0.4, 0.6],
    "min_area": [4, 8, 16],
}
QUICK_GRID = {"seed_threshold": [0.3, 0.4, 0.5, 0.6, 0.7], "mask_threshold": [0.4, 0.5, 0.6]}


def decoder_params(decoder, t: int, names) -> dict:
    """Target ``t``'s current values of the parameters ``names``."""
    return {n: getattr(decoder, DECODER_FIELDS[n])[t] for n in names}


def set_decoder_params(decoder, t: int, params: dict) -> None:
    """Set target ``t``'s postprocessing parameters on a decoder (in place)."""
    for name, value in params.items():
        field = getattr(decoder, DECODER_FIELDS[name])
        field[t] = type(field[t])(value)


def set_config_params(config, target: str, params: dict) -> None:
    """Write tuned parameters into a model config's settings for ``target``."""
    pp = config.postprocess_for(target)
    for name, value in params.items():
        setattr(pp, CONFIG_FIELDS[name], type(getattr(pp, CONFIG_FIELDS[name]))(value))


def coordinate_descent(evaluate: Callable[[dict], float], start: dict, grid: dict, passes: int = 2,
                       log: Callable[[str], None] | None = None) -> tuple[dict, float, list]:
    """Maximise ``evaluate(params)`` one parameter at a time over ``grid``, starting from ``start``.

    A change is kept when it gains more than 1e-4. Returns (best params, best score, trace of improvements).
    """
    params = dict(start)
    best = evaluate(params)
    trace = [{"params": dict(params), "score": best}]
    for _ in range(passes):
        changed = False
        for name, values in grid.items():
            for v in values:
                if v == params[name]:
                    continue
                trial = {**params, name: v}
                score = evaluate(trial)
                if score > best + 1e-4:
                    best, params, changed = score, trial, True
                    trace.append({"params": dict(params), "score": score})
                    if log is not None:
                        log(f"{name}={v}: {score:.4f}")
        if not changed:
            break
    return params, best, trace


def tune_decoder(decoder, n_targets: int, evaluate_target: Callable[[int], float], grid: dict = QUICK_GRID,
                 passes: int = 2) -> list[dict]:
    """Tune every target of ``decoder`` in place; ``evaluate_target(t)`` scores target t with the decoder's
    current settings. Returns the chosen parameters per target."""
    chosen = []
    for t in range(n_targets):
        def evaluate(params: dict, t: int = t) -> float:
            set_decoder_params(decoder, t, params)
            return evaluate_target(t)

        params, _, _ = coordinate_descent(evaluate, decoder_params(decoder, t, grid), grid, passes)
        set_decoder_params(decoder, t, params)
        chosen.append(params)
    return chosen
