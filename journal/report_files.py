"""The analytical reports as files one sends: CSV (UTF-8 with BOM, ``;`` — what Excel in a
Russian locale opens directly) and XLSX (openpyxl) — one report, the quarterly workbook (a
sheet per report, native charts), and the register written row by row (write-only mode)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

MONTHS = ("январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август", "сентябрь",
          "октябрь", "ноябрь", "декабрь")
NUMBER_FORMATS = {"int": "#,##0", "percent": "0.0%", "seconds": '0.0" с"', "days": "0.00",
                  "hours": "0.0"}
HEADER_FILL = PatternFill("solid", fgColor="DDE6F0")
BOLD = Font(bold=True)
TITLE = Font(bold=True, size=13)


def period_title(label: str) -> str:
    """2026-11 → «ноябрь 2026»; 2026-Q4 → «IV квартал 2026»."""
    year, rest = label[:4], label[5:]
    if rest.startswith("Q"):
        return f"{('I', 'II', 'III', 'IV')[int(rest[1]) - 1]} квартал {year}"
    return f"{MONTHS[int(rest) - 1]} {year}"


def xlsx_value(value: Any) -> Any:
    """A value a worksheet cell accepts: control characters (an SMO code typed by hand, a
    pasted summary) would make openpyxl refuse the whole file."""
    return ILLEGAL_CHARACTERS_RE.sub(" ", value) if isinstance(value, str) else value


def xlsx_row(values: Iterable[Any]) -> list[Any]:
    return [xlsx_value(v) for v in values]


def _heading(report: dict[str, Any], fund: str) -> list[list[Any]]:
    smo = f" — СМО {report['smo']}" if report.get("smo") else ""
    return [[fund], [report["title"]], [f"Период: {period_title(report['period'])}{smo}"]]


def _comparison(report: dict[str, Any]) -> list[list[Any]]:
    """Headline figures: the period, the previous period, the same period a year earlier."""
    compare = report["compare"]
    header = ["Показатель", period_title(report["period"])]
    for name, title in (("previous", "пред. период"), ("year_ago", "год назад")):
        other = compare.get(name)
        header.append(f"{period_title(other['period'])} ({title})" if other else title)
    rows = [header]
    for key, value in report["headline"].items():
        row = [report["headline_titles"].get(key, key), value]
        for name in ("previous", "year_ago"):
            other = compare.get(name)
            row.append(other["headline"].get(key) if other else None)
        rows.append(row)
    return rows


# ------------------------------------------------------------------ CSV
def report_csv(report: dict[str, Any], fund: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    for line in _heading(report, fund):
        writer.writerow(line)
    writer.writerow([])
    writer.writerows(_cells(r) for r in _comparison(report))
    for section in report["sections"]:
        writer.writerow([])
        writer.writerow([section["title"]])
        keys = [c["key"] for c in section["columns"]]
        writer.writerow([c["title"] for c in section["columns"]])
        for row in section["rows"]:
            writer.writerow(_cells(row[k] for k in keys))
        if section["totals"]:
            writer.writerow(_cells(section["totals"].get(k) for k in keys))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _cells(values: Iterable[Any]) -> list[Any]:
    return ["" if v is None else v for v in values]


def csv_line(values: Iterable[Any]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerow(_cells(values))
    return buffer.getvalue().encode("utf-8")


# ------------------------------------------------------------------ XLSX
def write_report_sheet(sheet: Worksheet, report: dict[str, Any], fund: str) -> None:
    """One report on one sheet: fund and period, the comparison, each section's table with
    number formats and a totals row, a bar chart beside the sections that have one."""
    for line in _heading(report, fund):
        sheet.append(xlsx_row(line))
    sheet["A1"].font = TITLE
    sheet["A2"].font = BOLD
    sheet.append([])
    first = True
    for row in _comparison(report):
        sheet.append(xlsx_row(row))
        r = sheet.max_row
        if first:
            _style_header(sheet, r, len(row))
            first = False
        elif report["headline_titles"] and row[0] == report["headline_titles"].get(
                "service_level"):
            for col in range(2, len(row) + 1):
                sheet.cell(r, col).number_format = NUMBER_FORMATS["percent"]
        else:
            for col in range(2, len(row) + 1):
                sheet.cell(r, col).number_format = NUMBER_FORMATS["int"]
    widths: dict[int, int] = {1: 28}
    for section in report["sections"]:
        sheet.append([])
        sheet.append(xlsx_row([section["title"]]))
        sheet.cell(sheet.max_row, 1).font = BOLD
        columns = section["columns"]
        sheet.append(xlsx_row(c["title"] for c in columns))
        header_row = sheet.max_row
        _style_header(sheet, header_row, len(columns))
        for index, column in enumerate(columns, start=1):
            widths[index] = max(widths.get(index, 10), min(40, len(column["title"]) + 2))
        for row in section["rows"]:
            sheet.append(xlsx_row(row.get(c["key"]) for c in columns))
            _formats(sheet, sheet.max_row, columns)
        last_data = sheet.max_row
        if section["totals"]:
            sheet.append(xlsx_row(section["totals"].get(c["key"]) for c in columns))
            _formats(sheet, sheet.max_row, columns)
            for col in range(1, len(columns) + 1):
                sheet.cell(sheet.max_row, col).font = BOLD
        if section.get("chart") and last_data > header_row:
            _chart(sheet, section, columns, header_row, last_data)
    for index, width in widths.items():
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = None


def _style_header(sheet: Worksheet, row: int, width: int) -> None:
    for col in range(1, width + 1):
        cell = sheet.cell(row, col)
        cell.font = BOLD
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")


def _formats(sheet: Worksheet, row: int, columns: list[dict[str, Any]]) -> None:
    for col, column in enumerate(columns, start=1):
        fmt = NUMBER_FORMATS.get(column["kind"])
        if fmt:
            sheet.cell(row, col).number_format = fmt


def _chart(sheet: Worksheet, section: dict[str, Any], columns: list[dict[str, Any]],
           header_row: int, last_data: int) -> None:
    keys = [c["key"] for c in columns]
    col = keys.index(section["chart"]) + 1
    chart = BarChart()
    chart.type = "col"
    chart.title = section["title"]
    chart.y_axis.title = columns[col - 1]["title"]
    chart.legend = None
    chart.height, chart.width = 7.5, 16
    data = Reference(sheet, min_col=col, min_row=header_row, max_row=last_data)
    categories = Reference(sheet, min_col=1, min_row=header_row + 1, max_row=last_data)
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(categories)
    sheet.add_chart(chart, f"{get_column_letter(len(columns) + 2)}{header_row}")


def _safe_title(title: str) -> str:
    for char in "[]:*?/\\":
        title = title.replace(char, " ")
    return title[:31]


def report_xlsx(report: dict[str, Any], fund: str) -> bytes:
    return workbook_xlsx([report], fund)


def workbook_xlsx(reports: list[dict[str, Any]], fund: str) -> bytes:
    """The quarterly analytical material: a sheet per report."""
    book = Workbook()
    for sheet in list(book.worksheets):
        book.remove(sheet)
    for report in reports:
        write_report_sheet(book.create_sheet(_safe_title(report["title"])), report, fund)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
