"""Reading uploads: CSV, XLSX (formulas and macros refused) and GeoPackage, every cell
as text."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
from openpyxl import Workbook

from services.empower.domain.datasets.files import FileFormat, read_table
from services.kit.errors import InvalidArgument


def _xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_csv_cells_stay_text_so_id_numbers_keep_their_digits():
    table = read_table(b"id_number,n\n010114195203141234,007\n", FileFormat.CSV)
    assert table.to_dict("records") == [{"id_number": "010114195203141234", "n": "007"}]


def test_csv_empty_cells_quotes_and_a_byte_order_mark():
    content = '\ufeffid_number,phone,note\n"310114195203141234",,"a, b"\n'.encode()
    assert read_table(content, FileFormat.CSV).to_dict("records") == [
        {"id_number": "310114195203141234", "phone": "", "note": "a, b"}
    ]


def test_a_csv_with_ragged_rows_is_refused_naming_the_content():
    with pytest.raises(InvalidArgument) as refused:
        read_table(b"a,b\n1,2,3\n", FileFormat.CSV)
    assert refused.value.violations[0].field == "content"


def test_a_csv_that_is_not_utf8_is_refused_naming_the_content():
    with pytest.raises(InvalidArgument) as refused:
        read_table("名字\n张三\n".encode("gbk"), FileFormat.CSV)
    assert refused.value.violations[0].field == "content"
    assert "UTF-8" in refused.value.violations[0].description


def test_xlsx_values_are_read_as_text():
    content = _xlsx([["id_number", "household_size"], ["310114195203141234", 3]])
    assert read_table(content, FileFormat.XLSX).to_dict("records") == [
        {"id_number": "310114195203141234", "household_size": "3"}
    ]


def test_an_xlsx_with_a_formula_is_refused_naming_the_cell():
    content = _xlsx([["a", "b"], [1, "=A2*2"]])
    with pytest.raises(InvalidArgument) as refused:
        read_table(content, FileFormat.XLSX)
    assert "cell B2 holds a formula" in refused.value.violations[0].description


def test_an_xlsx_with_macros_is_refused():
    content = _xlsx([["a"], [1]])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(content)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item))
        target.writestr("xl/vbaProject.bin", b"\x00macro")
    with pytest.raises(InvalidArgument) as refused:
        read_table(out.getvalue(), FileFormat.XLSX)
    assert "macros" in refused.value.violations[0].description


def test_something_that_is_not_a_workbook_is_refused():
    with pytest.raises(InvalidArgument, match="not an XLSX workbook"):
        read_table(b"id_number\n1\n", FileFormat.XLSX)


def test_a_geopackage_table_is_read_with_its_attributes(tmp_path: Path):
    path = tmp_path / "register.gpkg"
    pyogrio.raw.write(
        path,
        geometry=None,
        field_data=[
            np.array(["310114195203141234"], dtype=object),
            np.array(["xingming b1"], dtype=object),
        ],
        fields=["id_number", "address"],
        layer="register",
        driver="GPKG",
    )
    table = read_table(path.read_bytes(), FileFormat.GEOPACKAGE)
    assert table.to_dict("records") == [
        {"id_number": "310114195203141234", "address": "xingming b1"}
    ]


def test_an_empty_or_broken_geopackage_is_refused():
    with pytest.raises(InvalidArgument, match="empty"):
        read_table(b"", FileFormat.GEOPACKAGE)
    with pytest.raises(InvalidArgument, match="not a readable GeoPackage"):
        read_table(b"not sqlite at all", FileFormat.GEOPACKAGE)
