"""Report export: the summary as flat rows, written as CSV (UTF-8 with BOM, ``;`` — what
Excel in a Russian locale opens directly) or XLSX (openpyxl)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

HEADER = ("Раздел", "Группировка", "Значение", "Показатель", "Число")
SECTION_TITLES = {"requests": "Заявки", "calls": "Звонки", "callbacks": "Отсроченные ответы",
                  "change": "Изменение к прошлому периоду"}


def rows(summary: dict[str, Any]) -> Iterator[tuple[str, str, str, str, Any]]:
    """(section, grouping, key, metric, value) for every figure of the summary."""
    requests = summary["requests"]
    for name, value in requests.items():
        if isinstance(value, dict):
            for key, count in value.items():
                yield ("requests", name, key, "count", count)
        else:
            yield ("requests", "total", "", name, value)
    calls = summary["calls"]
    for metric, value in calls["total"].items():
        yield ("calls", "total", "", metric, value)
    for grouping in ("by_line", "by_hour"):
        for key, figures in calls[grouping].items():
            for metric, value in figures.items():
                yield ("calls", grouping, key, metric, value)
    yield ("calls", "total", "", "outbound", calls["outbound"])
    for metric, value in summary["callbacks"].items():
        yield ("callbacks", "total", "", metric, value)
    for metric, value in summary.get("change", {}).items():
        yield ("change", "total", "", metric, value)


def to_csv(summary: dict[str, Any]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(("Период", summary["period"], "", "", ""))
    writer.writerow(HEADER)
    for row in rows(summary):
        writer.writerow("" if v is None else v for v in row)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(summary: dict[str, Any]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.worksheets[0]
    sheet.title = "Сводка"
    sheet.append(["Период", summary["period"]])
    sheet.append(list(HEADER))
    for row in rows(summary):
        sheet.append(list(row))
    for column, width in zip("ABCDE", (14, 14, 22, 18, 12), strict=True):
        sheet.column_dimensions[column].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
