"""CSV inputs read strictly: a quote left open or a row with the wrong number of fields is an error
naming the line (never a caption silently swallowing the rest of the file), and a file that is not
in the expected encoding says so in one line."""
from __future__ import annotations

import csv
import os
from typing import Iterator

from ..errors import UsageError


def _not_text(path: str | os.PathLike, encoding: str, exc: UnicodeDecodeError) -> UsageError:
    return UsageError(f"{path} is not {encoding} text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                      f"pass --encoding with the file's encoding (e.g. --encoding latin-1)")


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    try:
        with open(path, encoding=encoding) as f:
            return f.read()
    except UnicodeDecodeError as exc:
        raise _not_text(path, encoding, exc) from None
    except LookupError:
        raise UsageError(f"unknown --encoding {encoding!r}") from None


def csv_rows(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) for each non-blank record; every record must have as many fields as the
    first one (the header, if the file has one)."""
    enc = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        with open(path, newline="", encoding=enc) as f:
            reader = csv.reader(f, strict=True)
            width, start = None, 1
            while True:
                start = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise UsageError(f"{path}, line {start}: {exc}; a quote opened there is never closed (quote a "
                                     f"value that holds a quote mark as \"...\" with inner quotes doubled)") from None
                if not any(c.strip() for c in row):
                    continue
                width = width or len(row)
                if len(row) != width:
                    raise UsageError(f"{path}, line {start}: {len(row)} fields where the first row has {width} "
                                     f"(quote a value that contains a comma: \"a dog, running\")")
                yield start, row
    except UnicodeDecodeError as exc:
        raise _not_text(path, encoding, exc) from None
    except LookupError:
        raise UsageError(f"unknown --encoding {encoding!r}") from None
