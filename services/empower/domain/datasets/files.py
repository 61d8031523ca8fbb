"""Reading the files a district uploads into columns of text.

Every cell is read as text (cleaning decides what it means), so an ID number never
loses its leading digits or becomes a float. XLSX workbooks with formulas or macros
are refused: a formula's cached value may be stale or absent, and a macro-enabled
workbook is not data. GeoPackages are read with their first layer's attributes.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from enum import StrEnum
from pathlib import Path

import pandas as pd

from services.kit.errors import InvalidArgument

MAX_ROWS = 2_000_000
_BOM = b"\xef\xbb\xbf"
_MACRO_PARTS = ("vbaproject.bin", "vbadata.xml")


class FileFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"
    GEOPACKAGE = "geopackage"


def read_table(content: bytes, file_format: FileFormat) -> pd.DataFrame:
    """The file's rows as a frame of strings; INVALID_ARGUMENT on `content` when unreadable."""
    if not content:
        raise InvalidArgument.field("content", "the file is empty")
    match file_format:
        case FileFormat.CSV:
            frame = _csv(content)
        case FileFormat.XLSX:
            frame = _xlsx(content)
        case FileFormat.GEOPACKAGE:
            frame = _geopackage(content)
    if len(frame) > MAX_ROWS:
        raise InvalidArgument.field("content", f"at most {MAX_ROWS} rows per file")
    return frame


def _csv(content: bytes) -> pd.DataFrame:
    """Arrow's CSV reader (C++, on several threads) straight into Arrow-backed strings."""
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument.field("content", "a CSV file must be UTF-8 text") from None
    if content.startswith(_BOM):
        content = content[len(_BOM) :]
    if not content.strip():
        raise InvalidArgument.field("content", "the file is empty")
    try:
        frame = pd.read_csv(
            io.BytesIO(content), dtype=str, keep_default_na=False, na_values=[], engine="pyarrow"
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InvalidArgument.field(
            "content", f"not a readable CSV file: {_first_line(exc)}"
        ) from None
    return frame.fillna("")


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _xlsx(content: bytes) -> pd.DataFrame:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        names = [n.lower() for n in archive.namelist()]
    except zipfile.BadZipFile:
        raise InvalidArgument.field("content", "not an XLSX workbook") from None
    if any(n.rsplit("/", 1)[-1] in _MACRO_PARTS for n in names):
        raise InvalidArgument.field("content", "the workbook contains macros; save it as .xlsx")
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise InvalidArgument.field(
            "content", f"not a readable XLSX workbook: {_first_line(exc)}"
        ) from None
    try:
        sheet = book.worksheets[0]
        rows = sheet.iter_rows(values_only=False)
        header_cells = next(rows, None)
        if header_cells is None:
            raise InvalidArgument.field("content", "the first sheet is empty")
        header = ["" if c.value is None else str(c.value) for c in header_cells]
        data: list[list[str]] = []
        for number, cells in enumerate(rows, start=2):
            values: list[str] = []
            for cell in cells:
                if cell.data_type == "f":
                    column = getattr(cell, "column_letter", "")
                    raise InvalidArgument.field(
                        "content",
                        f"cell {column}{number} holds a formula; paste values only",
                    )
                values.append(_cell_text(cell.value))
            data.append(values[: len(header)] + [""] * (len(header) - len(values)))
    finally:
        book.close()
    return pd.DataFrame(data, columns=header, dtype=str)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "date") and hasattr(value, "hour"):
        return value.date().isoformat()  # type: ignore[attr-defined,no-any-return]
    return str(value)


def _geopackage(content: bytes) -> pd.DataFrame:
    import pyogrio
    import pyogrio.raw

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload.gpkg"
        path.write_bytes(content)
        try:
            layers = pyogrio.list_layers(path)
            if len(layers) == 0:
                raise InvalidArgument.field("content", "the GeoPackage has no layer")
            meta, _, _, columns = pyogrio.raw.read(
                path, layer=str(layers[0][0]), read_geometry=False
            )
        except InvalidArgument:
            raise
        except Exception as exc:  # GDAL's errors for a file that is not a GeoPackage
            raise InvalidArgument.field(
                "content", f"not a readable GeoPackage: {_first_line(exc)}"
            ) from None
    names = [str(n) for n in meta["fields"]]
    return pd.DataFrame(
        {
            name: [_cell_text(v) for v in values]
            for name, values in zip(names, columns, strict=True)
        },
        dtype=str,
    )
