"""Reads a CSV upload as a stream of rows without holding the file in memory."""

from __future__ import annotations

import codecs
import csv
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter

from shared.errors import ValidationFailed
from shared.prospects.model import REQUIRED_COLUMNS, canonical_header

SUPPORTED_ENCODINGS = frozenset({"utf-8", "utf-8-sig", "utf-16", "windows-1252", "latin-1"})


class CsvFormatError(ValidationFailed):
    """The file as a whole cannot be read: nothing from it is imported."""

    code = "csv_unreadable"
    title = "The CSV file cannot be read"


@dataclass
class CsvStream:
    """Rows as {canonical column: text}, each with its line number in the file."""

    chunks: Iterable[bytes]
    encoding: str = "utf-8-sig"
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    ignored_columns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.encoding not in SUPPORTED_ENCODINGS:
            raise CsvFormatError(
                f"Unsupported encoding {self.encoding!r}; use one of "
                f"{', '.join(sorted(SUPPORTED_ENCODINGS))}."
            )

    def _lines(self) -> Iterator[str]:
        # Whole chunks of lines are handed to the csv reader at once (chain over lists):
        # a generator step per line cost as much as parsing it.
        return chain.from_iterable(self._line_lists())

    def _line_lists(self) -> Iterator[list[str]]:
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="strict")
        pending = ""
        line = 1
        for chunk in self.chunks:
            self.sha256.update(chunk)
            try:
                pending += decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                near = line + pending.count("\n")
                raise CsvFormatError(
                    f"The file is not valid {self.encoding} near line {near}"
                    " (export it as UTF-8, or pass ?encoding=windows-1252).",
                ) from exc
            *complete, pending = pending.split("\n")
            line += len(complete)
            yield [text + "\n" for text in complete]
        try:
            pending += decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise CsvFormatError(f"The file ends inside a {self.encoding} character.") from exc
        if pending:
            yield [pending]

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        reader = csv.reader(self._lines(), strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise CsvFormatError("The file is empty.") from None
        except csv.Error as exc:
            raise CsvFormatError(f"The header row is not valid CSV: {exc}") from exc
        columns: list[str | None] = []
        for raw in header:
            canonical = canonical_header(raw)
            if canonical is None and raw.strip():
                self.ignored_columns.append(raw.strip())
            columns.append(canonical if canonical not in columns else None)
        missing = REQUIRED_COLUMNS - {c for c in columns if c}
        if missing:
            raise CsvFormatError(
                f"Missing required column(s): {', '.join(sorted(missing))}. "
                f"Found: {', '.join(h.strip() for h in header) or 'nothing'}."
            )
        width = len(columns)
        mapped = [(index, column) for index, column in enumerate(columns) if column]
        names = tuple(column for _, column in mapped)
        # itemgetter returns a bare value for one index: keep it a tuple either way.
        pick = itemgetter(*(index for index, _ in mapped)) if len(mapped) > 1 else None
        single = mapped[0][0] if len(mapped) == 1 else 0
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise CsvFormatError(f"Line {reader.line_num}: not valid CSV ({exc}).") from exc
            if not "".join(record).strip():
                continue
            if len(record) == width:
                values = dict(zip(names, pick(record) if pick else (record[single],), strict=True))
            else:
                values = {
                    column: value for column, value in zip(columns, record, strict=False) if column
                }
                if len(record) > width:
                    values["__extra__"] = str(len(record) - width)
            yield reader.line_num, values
