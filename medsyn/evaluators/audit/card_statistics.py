"""The trust card's statistics tables: minimum n per failure (``--power``), reference
sensitivity (``--reference-sensitivity``) and the preprocessing table (``--preprocessing``),
as Markdown and HTML. No torch: the report renders cards."""

from __future__ import annotations

from markupsafe import escape as _markup_escape


def _fmt(x, digits=3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        if x != 0 and abs(x) < 10 ** -digits:
            return f"{x:.1e}"
        return f"{x:.{digits}g}" if abs(x) >= 1000 else f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return str(x)


def _signed(x) -> str:
    if x is None:
        return "n/a"
    return "0" if x == 0 else ("+" if x > 0 else "") + _fmt(x)


def power_tables(audit: dict) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, caption, header, rows) per space of the --power block."""
    block = audit.get("power")
    if not isinstance(block, dict):
        return []
    st = block["settings"]
    sizes = st["sizes"]
    out = []
    for space, failures in block["spaces"].items():
        keys = list(next(iter(failures.values()), {}))
        rows = []
        for fname, cells in failures.items():
            title = audit["failures"].get(fname, {}).get("title", fname)
            param = audit["failures"].get(fname, {}).get("parameter", "")
            for i, lv in enumerate(next(iter(cells.values()))["levels"]):
                row = [title if i == 0 else "", f"{lv['level']} ({param} {_fmt(lv['parameter'])})"]
                for key in keys:
                    level = cells[key]["levels"][i]
                    row.append(str(level["min_n"]) if level["min_n"] is not None
                               else f"> {sizes[-1]}")
                rows.append(row)
        caption = (f"Minimum n (images per synthetic set) at which each failure level is "
                   f"detected with {round(100 * st['target'])} % power: a draw is detected when "
                   f"it lies beyond the {round(100 * (1 - st['alpha']))} % quantile of "
                   f"real-vs-real draws of the same n; {st['repeats']} draws per size; sizes "
                   f"{', '.join(map(str, sizes))}"
                   + (f" (left out, above half the pool: "
                      f"{', '.join(map(str, st['sizes_left_out']))})"
                      if st.get("sizes_left_out") else "") + ".")
        out.append((f"Minimum n for {round(100 * st['target'])} % power: {space}", caption,
                    ["failure", "level", *keys], rows))
    return out


def reference_tables(audit: dict) -> list[tuple[str, str, list[str], list[list[str]]]]:
    block = audit.get("reference_sensitivity")
    if not isinstance(block, dict):
        return []
    out = []
    for space, sens in block["spaces"].items():
        real = audit["spaces"].get(space, {}).get("real_vs_real", {})
        rows = []
        for key, b in sens["keys"].items():
            r = real.get(key, {})
            ci = r.get("ci95")
            h = b["halves"]
            loo = b.get("leave_one_class_out")
            rows.append([key, _fmt(r.get("value")) + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"
                                                      if ci else ""),
                         f"{_fmt(h['mean'])} ± {_fmt(h['sd'])} ({_fmt(h['min'])} .. "
                         f"{_fmt(h['max'])})",
                         f"{_fmt(loo['min'])} .. {_fmt(loo['max'])}" if loo else "n/a"])
        caption = (f"The held-out base sample scored against other real references: "
                   f"{sens['draws']} random halves of the reference ({sens['half_size']} "
                   f"images, whole {sens['units']}), and references of "
                   f"{sens['leave_one_class_out_size']} images with one class left out. A "
                   "generator's difference smaller than this spread is within what the choice "
                   "of reference alone does.")
        out.append((f"Reference sensitivity: {space}", caption,
                    ["metric", "full reference [95 % CI]", "halves: mean ± sd (min .. max)",
                     "one class left out: min .. max"], rows))
    return out


def preprocessing_tables(audit: dict) -> list[tuple[str, str, list[str], list[list[str]]]]:
    block = audit.get("preprocessing")
    if not isinstance(block, dict):
        return []
    out = []
    for space, table in block["spaces"].items():
        keys = table["keys"]
        rows = []
        for row in table["rows"]:
            if "unavailable" in row:
                rows.append([row["pipeline"], row["aspect"], *["–"] * len(keys)])
                continue
            rows.append([row["pipeline"], row["aspect"],
                         *[f"{_signed(row['change'][k])} ({_fmt(row['values'][k])})"
                           for k in keys]])
        notes = "; ".join(f"{r['pipeline']}: {r['unavailable']}" for r in table["rows"]
                          if "unavailable" in r)
        caption = ("The held-out base sample under alternative input pipelines, scored against "
                   "the reference prepared by the default pipeline: change from the default "
                   "pipeline's score (the score itself in brackets)."
                   + (f" Not measured: {notes}." if notes else ""))
        out.append((f"Preprocessing sensitivity: {space}", caption,
                    ["pipeline", "varies", *keys], rows))
    return out


def _all_tables(audit):
    return power_tables(audit) + reference_tables(audit) + preprocessing_tables(audit)


def statistics_markdown(audit: dict) -> list[str]:
    lines: list[str] = []
    for title, caption, header, rows in _all_tables(audit):
        lines += [f"## {title}", "", caption, "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    return lines


def statistics_html(audit: dict, h: str) -> list[str]:
    out: list[str] = []
    for title, caption, header, rows in _all_tables(audit):
        out.append(f'<{h} style="font-size:1rem">{_markup_escape(title)}</{h}>')
        out.append(f'<p class="muted">{_markup_escape(caption)}</p>')
        out.append('<div class="scroll"><table class="trust-card"><thead><tr>'
                   + "".join(f"<th>{_markup_escape(c)}</th>" for c in header)
                   + "</tr></thead><tbody>")
        for r in rows:
            out.append("<tr>" + "".join(f"<td>{_markup_escape(c)}</td>" for c in r) + "</tr>")
        out.append("</tbody></table></div>")
    return out
