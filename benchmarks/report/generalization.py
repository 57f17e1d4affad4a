"""README section of benchmarks/bench_generalization.py: each part it measured, mean ± std
over seeds, against issue 11's targets."""

from __future__ import annotations

from ..bench_generalization import ON_REQUEST, PARTS, ROWS
from .fmt import conditions, pct


def _pct(spread: dict) -> str:
    return f"{pct(spread['mean'])} ± {100 * spread['std']:.1f}"


def _seeds(rows: list[dict]) -> str:
    return f"{len(rows)} seed{'s' * (len(rows) != 1)}"


def _spread(spread: dict) -> str:
    return f"{spread['mean']:.1f} ± {spread['std']:.1f}"


def _target(met: bool, text: str) -> str:
    return f"target {text}: {'met' if met else 'missed'}"


def _loso(part: dict, targets: dict) -> list[str]:
    """A sentence per recipe against the targets, then one table: a row per recipe, a column per
    held-out speaker."""
    recipes = part["recipes"]
    lines = []
    for name, recipe in recipes.items():
        seeds = sorted({row["seed"] for row in recipe["folds"]})
        mean, worst = recipe["mean"], recipe["worst"]
        lines.append(
            f"**Leave one speaker out** (`{name}`, {_seeds(seeds)}): mean over the "
            f"{len(recipe['per_speaker'])} folds {_pct(mean)} "
            f"({_target(mean['mean'] >= targets['loso_mean'], pct(targets['loso_mean'], 0))}), "
            f"worst speaker `{worst['speaker']}` {_pct(worst)} "
            f"({_target(worst['mean'] >= targets['loso_worst'], pct(targets['loso_worst'], 0))}).")
    speakers = list(dict.fromkeys(s for recipe in recipes.values() for s in recipe["per_speaker"]))
    lines += ["", "| recipe (test accuracy on the held-out speaker) | "
              + " | ".join(f"`{s}`" for s in speakers) + " |", "|---|" + "---|" * len(speakers)]
    for name, recipe in recipes.items():
        cells = (_pct(recipe["per_speaker"][s]) if s in recipe["per_speaker"] else "not run"
                 for s in speakers)
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return lines


def _ensemble(part: dict, targets: dict) -> list[str]:
    """A sentence per recipe against the targets, then a row per recipe, a column per speaker."""
    recipes = part["recipes"]
    lines = []
    for name, recipe in recipes.items():
        seeds = len(recipe["folds"][0]["runs"])
        mean, worst = recipe["mean"], recipe["worst"]
        lines.append(
            f"**The seeds as one model** (`{name}`: each fold's {seeds} runs exported as one "
            f"ensemble, `speechrnn export RUN RUN RUN -o FILE`, one accuracy a fold): mean over "
            f"the {len(recipe['folds'])} folds {pct(mean)} "
            f"({_target(mean >= targets['loso_mean'], pct(targets['loso_mean'], 0))}), worst "
            f"speaker `{worst['speaker']}` {pct(worst['accuracy'])} "
            f"({_target(worst['accuracy'] >= targets['loso_worst'], pct(targets['loso_worst'], 0))}).")
    speakers = list(dict.fromkeys(f["speaker"] for recipe in recipes.values() for f in recipe["folds"]))
    lines += ["", "| ensemble of the seeds (test accuracy on the held-out speaker) | "
              + " | ".join(f"`{s}`" for s in speakers) + " |", "|---|" + "---|" * len(speakers)]
    for name, recipe in recipes.items():
        accuracy = {fold["speaker"]: fold["accuracy"] for fold in recipe["folds"]}
        cells = (pct(accuracy[s]) if s in accuracy else "not run" for s in speakers)
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return lines


def _synth2real(part: dict, targets: dict) -> list[str]:
    digits = part["digits"]
    accuracy, goal = digits["fsdd_accuracy"], targets["synth2real_accuracy"]
    return [f"**Synthetic -> real** ({_seeds(digits['seeds'])}): `{digits['recipe']}` on all "
            f"{digits['seeds'][0]['fsdd_clips']:,} FSDD clips {_pct(accuracy)} "
            f"({_target(accuracy['mean'] >= goal, pct(goal, 0))})."]


def _false_keywords(part: dict, targets: dict) -> str:
    false, limit = part["false_keywords_per_hour"], targets["false_keywords_per_hour"]
    return (f"{_spread(false)} false keywords per hour of held-out real "
            f"noise ({part['seeds'][0]['noise_seconds'] / 60:.1f} min; "
            f"{_target(false['mean'] <= limit, f'<= {limit:g}')})")


def _default(part: dict, targets: dict) -> list[str]:
    unknown, goal = part["fsdd_unknown_share"], targets["fsdd_unknown_share"]
    first = part["seeds"][0]
    return [f"**The default model** (`{part['recipe']}`, {_seeds(part['seeds'])}): "
            f"{_pct(part['test_accuracy'])} on its synthetic test split "
            f"({first['test_clips']} clips); calls {_pct(unknown)} of the "
            f"{sum(first['fsdd_predictions'].values()):,} real FSDD clips `_unknown_` "
            f"({_target(unknown['mean'] >= goal, pct(goal, 0))}); "
            f"{_false_keywords(part, targets)} from `speechrnn detect` at its defaults. "
            "Share called `_silence_`: "
            + ", ".join(f"{kind} {_pct(share)}" for kind, share in part["silence_share"].items())
            + "."]


def _noise(part: dict, targets: dict) -> list[str]:
    recall, goal = part["digit_recall"], targets["digit_recall"]
    return [f"**Keyword spotting in real noise** (`{part['recipe']}`, {_seeds(part['seeds'])}, "
            f"`speechrnn detect` at threshold {part['threshold']:g}): "
            f"{_false_keywords(part, targets)}; on a "
            f"{part['digit_recording_seconds'] / 60:.0f}-minute recording of FSDD test digits "
            f"precision {part['digit_precision']['mean']:.3f}, recall {recall['mean']:.3f} ± "
            f"{recall['std']:.3f} ({_target(recall['mean'] >= goal, f'{goal:g}')})."]


def _channel(part: dict, targets: dict) -> list[str]:
    """A sentence and a table per recipe: a row per channel, a column per level."""
    lines = []
    for name, recipe in part["recipes"].items():
        lines += [""] * bool(lines) + _channel_of(name, recipe, targets)
    return lines


def _channel_of(name: str, part: dict, targets: dict) -> list[str]:
    rows = part["conditions"]
    limit = targets["channel_drop_points"]
    worst = max(rows, key=lambda row: row["drop_points"]["mean"])
    low, high = part["band_hz"]
    lines = [f"**Channel** (`{name}`, official split, {part['test_clips']} test clips, "
             f"{_seeds(part['seeds'])}; {low:g}-{high:g} Hz band-pass, resampling through "
             f"{part['narrow_rate'] / 1000:g} kHz, peak level, a synthetic room with RT60 "
             f"{part['room']['rt60_min']:g}-{part['room']['rt60_max']:g} s; every clip rounded "
             "to 16 bits): accuracy, and its drop against the clean clips in points. Largest "
             f"drop: {worst['name']}, {worst['drop_points']['mean']:.1f} points "
             f"({_target(worst['drop_points']['mean'] <= limit, f'<= {limit:g} points')}).", ""]
    levels = []
    for row in rows:
        if row["level_dbfs"] not in levels:
            levels.append(row["level_dbfs"])
    lines += ["| channel | " + " | ".join("as recorded" if level is None else f"{level:g} dBFS peak"
                                         for level in levels) + " |",
              "|---|" + "---|" * len(levels)]
    by = {}
    for row in rows:
        by.setdefault((row["channel"], row["room"]), []).append(row)
    for (channel, room), cells in by.items():
        lines.append(f"| {channel}{', room' if room else ''} | " + " | ".join(
            f"{_pct(c['accuracy'])} ({0.0 - c['drop_points']['mean']:+.1f})" for c in cells) + " |")
    return lines


RENDER = {"loso": _loso, "ensemble": _ensemble, "synth2real": _synth2real, "default": _default, "noise": _noise,
          "channel": _channel}


def render(result: dict) -> str:
    parts, lines = result["parts"], []
    for name in RENDER:
        if name in parts:
            lines += [*RENDER[name](parts[name], result["targets"]), ""]
    missing = [name for name in PARTS if name not in parts and name not in ON_REQUEST]
    commands = "; ".join(f"`{row['command']}`" for _, row in _rows(parts, RENDER))
    lines.append(f"Reproduce with {commands}.")
    if missing:
        lines[-1] += (" Not measured at this commit: " + ", ".join(f"`{m}`" for m in missing)
                      + " (`python -m benchmarks.bench_generalization --only PART`).")
    lines += ["", conditions(result["meta"])]
    earlier = [(name, row) for name, row in _rows(parts, RENDER) if "meta" in row]
    if earlier:
        lines[-1] += " Parts from an earlier run: " + "; ".join(
            f"`{name}` {row['meta']['date'][:10]} at `{row['meta']['commit']}`"
            for name, row in earlier) + "."
    return "\n".join(lines)


def _rows(parts: dict, names) -> list[tuple[str, dict]]:
    """Each measured part of ``names`` as (name, part); a part kept row by row (``ROWS``: loso's
    recipes) as one ("PART ROW", row) each."""
    rows = []
    for name in (name for name in names if name in parts):
        if name in ROWS:
            rows += [(f"{name} {key}", row) for key, row in parts[name][ROWS[name]].items()]
        else:
            rows.append((name, parts[name]))
    return rows


def ablation(result: dict) -> str:
    """docs/generalization.md's table: the default recipe as it ships (part ``default``) and each
    variant measured by part ``ablation``, with the same figures."""
    parts = result["parts"]
    if "default" not in parts:
        return ("*Not measured yet: run `python -m benchmarks.bench_generalization --only default`"
                ", then `python -m benchmarks.report`.*")
    rows = [("the recipe as it ships", parts["default"]),
            *parts.get("ablation", {}).get("variants", {}).items()]
    kinds = list(parts["default"]["silence_share"])
    lines = ["| default recipe | seeds | synthetic test | FSDD -> `_unknown_` | false keywords / h "
             "of real noise | " + " | ".join(f"{kind} -> `_silence_`" for kind in kinds)
             + " | measured at |", "|---|" + "---|" * (5 + len(kinds))]
    for name, row in rows:
        changed = "".join(f" `{o}`" for o in row.get("overrides", []))
        measured = row.get("meta", result["meta"])
        silence = " | ".join(_pct(row["silence_share"][kind]) for kind in kinds)
        lines.append(f"| {name}{changed} | {len(row['seeds'])} | {_pct(row['test_accuracy'])} | "
                     f"{_pct(row['fsdd_unknown_share'])} | "
                     f"{_spread(row['false_keywords_per_hour'])} | {silence} | "
                     f"`{measured['commit']}` |")
    commands = dict.fromkeys(f"`{row['command']}`" for _, row in rows)  # each once, in order
    return "\n".join([*lines, "", "Reproduce with " + "; ".join(commands) + " (each at its commit)."])


def screening(rows: list[dict]) -> str:
    """docs/generalization.md's screening table: one seed of each variant of the default recipe,
    on what a choice may look at (validation and development data), in the order screened."""
    kinds = list(next((row["dev_noise"]["silence_share"] for row in rows if "dev_noise" in row),
                      {}))
    lines = ["| variant | synthetic validation | FSDD development speakers -> `_unknown_` | "
             "false keywords in the development noise | "
             + "".join(f"{kind} -> `_silence_` | " for kind in kinds) + "measured at |",
             "|---|" + "---|" * (4 + len(kinds))]
    for row in rows:
        changed = "".join(f" `{o}`" for o in row["overrides"] if o not in row["name"])
        noise = row.get("dev_noise")
        if noise:
            heard = f"{noise['false_keywords']} in {noise['noise_seconds'] / 60:.1f} min | " + "".join(
                f"{pct(noise['silence_share'][kind])} | " for kind in kinds)
        else:
            heard = "not measured | " * (1 + len(kinds))
        lines.append(f"| {row['name']}{changed} | {pct(row['val_accuracy'])} | "
                     f"{pct(row['dev_unknown_share'])} | {heard}`{row['meta']['commit']}` |")
    return "\n".join([*lines, "", f"Seed {rows[0]['seed']} each; a variant is "
                       "`python -m benchmarks.screen_default NAME [KEY=VALUE ...]`."])


def speaker_screening(rows: list[dict]) -> str:
    """docs/generalization.md's table of FSDD recipe variants screened for speakers never heard
    (benchmarks/screen_speakers.py): one seed, each development speaker held out in turn."""
    speakers = [fold["speaker"] for fold in rows[0]["folds"]]
    lines = ["| variant | " + "".join(f"`{s}` held out | " for s in speakers)
             + "mean | mean through 300-3400 Hz | validation (mean) | measured at |",
             "|---|" + "---|" * (len(speakers) + 4)]
    for row in rows:
        changed = "".join(f" `{o}`" for o in row["overrides"])
        held_out = {fold["speaker"]: fold["held_out_accuracy"] for fold in row["folds"]}
        validation = sum(f["val_accuracy"] for f in row["folds"]) / len(row["folds"])
        named = f" ({row['name']})" if row["name"] != row["recipe"] else ""
        band = pct(row["held_out_band_mean"]) if "held_out_band_mean" in row else "not measured"
        lines.append(f"| `{row['recipe']}`{changed}{named} | "
                     + "".join(f"{pct(held_out[s])} | " for s in speakers)
                     + f"{pct(row['held_out_mean'])} | {band} | {pct(validation)} | "
                     f"`{row['meta']['commit']}` |")
    return "\n".join([*lines, "", f"Seed {rows[0]['seed']} each; a variant is "
                       "`python -m benchmarks.screen_speakers NAME [KEY=VALUE ...] "
                       "[--recipe RECIPE]`."])
