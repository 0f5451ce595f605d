"""CSV bytes in, column arrays out: the reading half of ``nncli.data``.

The package has one module per stage: ``reader`` (bytes to pieces of whole records,
decoding, separator detection, the csv module's exact reading), ``sink`` (records into
column arrays), ``table`` (``Column`` and ``Table``, what a read returns) and ``scan``
(``read_csv`` and ``iter_csv_chunks``, which drive the other three).

How a file is read, and why:

* Bytes are read in blocks of about 2 MiB into one reused buffer and cut at the
  last newline that is outside quotes (an even number of ``"`` before it), so
  each *piece* holds whole records. Memory is bounded by the piece, not the
  file. Every byte is hashed (``Table.sha256``).
* Records of plain numbers are parsed straight from the bytes into one float64
  matrix of shape (columns, rows), each column contiguous, by the Cython kernel
  ``nncli._kernels.csvparse``, without the GIL. Its capacity is estimated from
  the bytes left over the bytes per line seen, grown in place and trimmed at
  the end, so the peak stays close to the final size.
* The kernel stops at the first record it cannot read as plain numbers (a
  quote, a missing-value token, text, a wrong field count, bytes that are not
  ASCII); that record and a few after it (more while the kernel keeps failing)
  are decoded (NUL bytes and decoding errors are reported with their line) and
  re-read by the ``csv`` module, cell by cell, which gives exact line numbers,
  missing-value tokens, text columns and precise errors. Both paths parse
  numbers to the same correctly rounded float64 (``float()``'s, bit for bit).
* A column holds floats (NaN where a cell is missing or not a number; the
  non-numbers are kept with their row) while most of its cells are numbers,
  and its original text once most of them are not (then it is a text column:
  categories, booleans, labels, ids). Whether a column is *used* as numbers or
  categories, and what is an error, is decided later by ``nncli.data``.
* A column that turns from numbers to text after its first piece has the
  earlier numbers written back as canonical text (``7`` not ``7.0``, ``repr``
  otherwise); ``keep_text`` names columns whose exact text must be kept
  (an id column with leading zeros, say).

Line numbers are physical, 1-based, and point at the line where a record
starts (a quoted field may span several lines). Blank lines are skipped.
"""

from nncli.csvio.reader import SEPARATORS, UndecodableBytes, detect_separator
from nncli.csvio.scan import iter_csv_chunks, read_csv, read_options
from nncli.csvio.table import MISSING_TOKENS, Column, Table, format_number, parse_cells

__all__ = ["MISSING_TOKENS", "SEPARATORS", "Column", "Table", "UndecodableBytes",
           "detect_separator", "format_number", "iter_csv_chunks", "parse_cells", "read_csv",
           "read_options"]
