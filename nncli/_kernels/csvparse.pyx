"""CSV bytes straight into float64 columns: the fast path of ``nncli.csvio``.

``parse_numeric`` reads records of plain numbers (one separator, LF or CRLF line ends, no
quotes) from a block of bytes into a preallocated column-major matrix, without the GIL. It
stops at the first record it cannot read as plain numbers (a quote, a field count other than
the matrix's, an empty cell, ``NA``, ``inf``, ``1_000``, non-ASCII, ...) and says where that
record starts, so that the exact path (the csv module) can take over for it.

Numbers are correctly rounded, bit for bit like Python's ``float()``: up to 19 significant
digits with a decimal exponent in ±22 (±37 when the digits allow it) take Clinger's fast path
(one exact multiplication or division of two exactly representable doubles); anything else
goes to C ``strtod`` in the C locale, which glibc rounds correctly.
"""
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, memmove
from libc.math cimport NAN

cdef extern from *:
    """
    #include <stdlib.h>
    #include <locale.h>
    #if defined(__GLIBC__)
    static locale_t nncli_c_locale = (locale_t)0;
    static int nncli_csv_init(void) {
        if (!nncli_c_locale) nncli_c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        return nncli_c_locale != (locale_t)0;
    }
    static double nncli_strtod(const char *s, char **end) {
        return nncli_c_locale ? strtod_l(s, end, nncli_c_locale) : strtod(s, end);
    }
    #else
    /* Elsewhere plain strtod: under a locale whose decimal point is not '.', it stops
       early, the end check below fails and the exact path reads the cell. */
    static int nncli_csv_init(void) { return 0; }
    static double nncli_strtod(const char *s, char **end) { return strtod(s, end); }
    #endif
    """
    int nncli_csv_init()
    double nncli_strtod(const char *s, char **end) noexcept nogil

nncli_csv_init()

cdef enum:
    ST_DONE = 0  # every record up to ``end`` was read
    ST_FULL = 1  # the matrix is full; ``pos`` is the next record
    ST_FAIL = 2  # the record at ``pos`` is not plain numbers (nothing of it was counted)
    MAX_TOKEN = 400

#: parse_numeric statuses
DONE, FULL, FAIL = ST_DONE, ST_FULL, ST_FAIL

cdef double[38] POW10
cdef int _k
POW10[0] = 1.0
for _k in range(1, 38):
    POW10[_k] = POW10[_k - 1] * 10.0  # exact up to 1e22; above, only [23..37] as w·10^k below

cdef uint64_t TWO53 = (<uint64_t>1) << 53


cdef inline bint _space(unsigned char c, unsigned char sep) noexcept nogil:
    return (c == 32 or c == 9) and c != sep


cdef const unsigned char* _number(const unsigned char* p, const unsigned char* end,
                                  unsigned char sep, double* out) noexcept nogil:
    """Parse the field at p as a plain decimal number. Returns the pointer to the byte that
    ends the field (separator, CR, LF, or end), or NULL if it is not a plain number."""
    cdef const unsigned char* start
    cdef const unsigned char* stop
    cdef bint neg = False, truncated = False, eneg = False
    cdef uint64_t w = 0
    cdef int nsig = 0, ndig = 0, nfrac = 0
    cdef long ex = 0, e10
    cdef unsigned char c
    cdef double v
    cdef Py_ssize_t n
    cdef char buf[MAX_TOKEN + 1]
    cdef char* tail
    while p < end and _space(p[0], sep):
        p += 1
    start = p
    if p < end and (p[0] == 43 or p[0] == 45):  # + -
        neg = p[0] == 45
        p += 1
    while p < end:
        c = p[0]
        if c < 48 or c > 57:
            break
        ndig += 1
        if nsig < 19:
            if w != 0 or c != 48:
                w = w * 10 + (c - 48)
                nsig += 1
        else:
            truncated = True
            nfrac -= 1  # a dropped integer digit: one more power of ten
        p += 1
    if p < end and p[0] == 46:  # .
        p += 1
        while p < end:
            c = p[0]
            if c < 48 or c > 57:
                break
            ndig += 1
            if nsig < 19:
                if w != 0 or c != 48:
                    w = w * 10 + (c - 48)
                    nsig += 1
                nfrac += 1
            else:
                truncated = True
            p += 1
    if ndig == 0:
        return NULL
    if p < end and (p[0] == 101 or p[0] == 69):  # e E
        p += 1
        if p < end and (p[0] == 43 or p[0] == 45):
            eneg = p[0] == 45
            p += 1
        if p >= end or p[0] < 48 or p[0] > 57:
            return NULL
        while p < end and 48 <= p[0] <= 57:
            if ex < 100000000:
                ex = ex * 10 + (p[0] - 48)
            p += 1
        if eneg:
            ex = -ex
    stop = p
    while p < end and _space(p[0], sep):
        p += 1
    if p < end and p[0] != sep and p[0] != 10 and p[0] != 13:
        return NULL
    if w == 0 and not truncated:
        out[0] = -0.0 if neg else 0.0
        return p
    e10 = ex - nfrac
    if not truncated and w <= TWO53:
        if 0 <= e10 <= 22:
            v = <double>w * POW10[e10]
            out[0] = -v if neg else v
            return p
        if -22 <= e10 < 0:
            v = <double>w / POW10[-e10]
            out[0] = -v if neg else v
            return p
        if 22 < e10 <= 37 and w <= TWO53 / <uint64_t>POW10[e10 - 22]:
            # w·10^(e10−22) is an integer ≤ 2^53: exact; then one rounding by ·1e22
            v = (<double>w * POW10[e10 - 22]) * 1e22
            out[0] = -v if neg else v
            return p
    n = stop - start
    if n > MAX_TOKEN:
        return NULL
    memcpy(buf, start, n)
    buf[n] = 0
    v = nncli_strtod(buf, &tail)
    if tail != buf + n:
        return NULL
    out[0] = v
    return p


cdef inline const unsigned char* _skip_field(const unsigned char* p, const unsigned char* end,
                                             unsigned char sep) noexcept nogil:
    """End of an unused field (at its separator, CR or LF); NULL at a quote, which the csv
    module must read (a quoted field may hold separators and newlines)."""
    while p < end:
        if p[0] == sep or p[0] == 10 or p[0] == 13:
            return p
        if p[0] == 34:
            return NULL
        p += 1
    return p


cdef Py_ssize_t _records(const unsigned char* base, Py_ssize_t pos, Py_ssize_t end,
                         unsigned char sep, Py_ssize_t ncols, double* out, Py_ssize_t stride,
                         int64_t* lines, Py_ssize_t* row_io, Py_ssize_t max_row,
                         int64_t* line_io, int* status, const unsigned char* skip) noexcept nogil:
    """Parse records from base[pos:end]; returns the new pos (see parse_numeric)."""
    cdef const unsigned char* p = base + pos
    cdef const unsigned char* stop = base + end
    cdef const unsigned char* rec
    cdef Py_ssize_t row = row_io[0], j
    cdef int64_t line = line_io[0]
    cdef double v
    status[0] = ST_DONE
    while p < stop:
        if p[0] == 10:  # a blank line
            p += 1
            line += 1
            continue
        if p[0] == 13 and p + 1 < stop and p[1] == 10:
            p += 2
            line += 1
            continue
        if row >= max_row:
            status[0] = ST_FULL
            break
        rec = p
        j = 0
        while True:
            if skip != NULL and skip[j]:
                p = _skip_field(p, stop, sep)
                v = NAN
            else:
                p = _number(p, stop, sep, &v)
            if p == NULL:
                break
            out[j * stride + row] = v
            j += 1
            if j == ncols:
                break
            if p >= stop or p[0] != sep:
                p = NULL
                break
            p += 1
        if p != NULL and p < stop:  # the record must end here
            if p[0] == 13 and p + 1 < stop and p[1] == 10:
                p += 2
            elif p[0] == 10:
                p += 1
            else:
                p = NULL
        if p == NULL:
            p = rec
            status[0] = ST_FAIL
            break
        lines[row] = line
        row += 1
        line += 1
    row_io[0] = row
    line_io[0] = line
    return p - base


def parse_numeric(const unsigned char[::1] data, Py_ssize_t pos, Py_ssize_t end, int sep,
                  double[:, ::1] out, int64_t[::1] lines, Py_ssize_t row, Py_ssize_t max_row,
                  int64_t line, const unsigned char[::1] skip=None):
    """Parse whole records of plain numbers from ``data[pos:end]`` into ``out``.

    ``out`` is (ncols, capacity): record r's field j goes to ``out[j, r]``, its line number
    (``line`` counts from the first byte, one per LF) to ``lines[r]``, from ``row`` until
    ``max_row``. Blank lines are skipped. Returns ``(pos, row, line, status)``: status
    ``DONE`` (all read), ``FULL`` (``max_row`` reached; ``pos`` is the next record) or
    ``FAIL`` (``pos``/``line`` locate the first record that is not plain numbers).
    The separator must not be a digit, sign, ``.``, ``e``/``E``, quote, CR or LF.
    ``skip`` (one byte per column, nonzero: unused) makes the fields of those columns NaN
    without reading them (text the caller does not need is not decoded); a quote in one
    still stops the kernel.
    """
    cdef Py_ssize_t ncols = out.shape[0], stride = out.shape[1]
    cdef int status = ST_DONE
    cdef int64_t line_c = line
    cdef Py_ssize_t row_c = row
    if not 0 <= pos <= end <= data.shape[0]:
        raise ValueError("parse_numeric: bad byte range")
    if not 0 <= row <= max_row <= stride or lines.shape[0] < max_row or ncols < 1:
        raise ValueError("parse_numeric: bad row range or output shape")
    if sep < 0 or sep > 255 or chr(sep) in '0123456789+-.eE"\r\n':
        raise ValueError(f"parse_numeric: unsupported separator {chr(sep)!r}")
    cdef const unsigned char* pskip = NULL
    if skip is not None:
        if skip.shape[0] != ncols:
            raise ValueError("parse_numeric: skip needs one entry per column")
        pskip = &skip[0]
    if pos == end:
        return pos, row, line, DONE
    with nogil:
        pos = _records(&data[0], pos, end, <unsigned char>sep, ncols, &out[0, 0], stride,
                       &lines[0], &row_c, max_row, &line_c, &status, pskip)
    return pos, row_c, line_c, status


def skip_records(const unsigned char[::1] data, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t k):
    """Position just after the k-th LF outside double quotes from ``pos`` (or ``end``)."""
    cdef const unsigned char* base
    cdef Py_ssize_t i
    cdef bint quoted = False
    cdef unsigned char c
    if not 0 <= pos <= end <= data.shape[0]:
        raise ValueError("skip_records: bad byte range")
    if k <= 0 or pos == end:
        return pos
    base = &data[0]
    with nogil:
        i = pos
        while i < end:
            c = base[i]
            i += 1
            if c == 34:
                quoted = not quoted
            elif c == 10 and not quoted:
                k -= 1
                if k == 0:
                    break
    return i


def restride(double[::1] flat, Py_ssize_t ncols, Py_ssize_t old, Py_ssize_t new, Py_ssize_t n):
    """Move the first n values of each of ncols columns from stride ``old`` to stride ``new``
    in place (the buffer must hold ncols·max(old, new) values)."""
    cdef Py_ssize_t j
    cdef double* base
    if n < 0 or n > old or n > new or flat.shape[0] < ncols * max(old, new):
        raise ValueError("restride: bad sizes")
    if old == new or n == 0 or ncols < 2:
        return
    base = &flat[0]
    with nogil:
        if new > old:
            for j in range(ncols - 1, 0, -1):
                memmove(base + j * new, base + j * old, n * sizeof(double))
        else:
            for j in range(1, ncols):
                memmove(base + j * new, base + j * old, n * sizeof(double))


def count_byte(const unsigned char[::1] data, Py_ssize_t start, Py_ssize_t end, int byte):
    """How many times ``byte`` occurs in ``data[start:end]`` (a vectorised loop)."""
    cdef Py_ssize_t i, n = 0
    cdef const unsigned char* base
    cdef unsigned char c = <unsigned char>byte
    if not 0 <= start <= end <= data.shape[0]:
        raise ValueError("count_byte: bad byte range")
    if start == end:
        return 0
    base = &data[0]
    with nogil:
        for i in range(start, end):
            n += base[i] == c
    return n


def columns_into(double[:, ::1] X, Py_ssize_t col0, list columns, double[::1] means,
                 double[::1] stds):
    """``X[:, col0 + k] = (columns[k] - means[k]) / stds[k]`` for contiguous float64 columns,
    a block of rows at a time (the same IEEE operations as numpy's subtract then divide;
    a column with mean 0 and std 1 is copied as is)."""
    cdef Py_ssize_t n = X.shape[0], width = X.shape[1], m = len(columns)
    cdef Py_ssize_t i, i0, i1, k
    cdef double mu, sd
    cdef double* dst
    cdef const double* src
    cdef const double[::1] col
    cdef Py_ssize_t[::1] ptrs
    import numpy as np
    if col0 < 0 or col0 + m > width or means.shape[0] < m or stds.shape[0] < m:
        raise ValueError("columns_into: bad shapes")
    if n == 0 or m == 0:
        return
    ptrs = np.empty(m, dtype=np.intp)
    keep = []
    for k in range(m):
        col = columns[k]
        if col.shape[0] != n:
            raise ValueError("columns_into: a column has the wrong length")
        keep.append(col)
        ptrs[k] = <Py_ssize_t>&col[0]
    dst = &X[0, 0] + col0
    with nogil:
        for i0 in range(0, n, 128):
            i1 = min(i0 + 128, n)
            for k in range(m):
                src = <const double*>ptrs[k]
                mu = means[k]
                sd = stds[k]
                if mu == 0.0 and sd == 1.0:
                    for i in range(i0, i1):
                        dst[i * width + k] = src[i]
                else:
                    for i in range(i0, i1):
                        dst[i * width + k] = (src[i] - mu) / sd
