/*
 * gfx_sync.cdc._fastrows: the CDC reader's whole-row upsert loop and its read loop in C.
 *
 * whole_run() is the compiled twin of the inner loop of
 * gfx_sync.cdc.rawrows.ChangeBuilder.add_whole: it walks raw[start:] (pgoutput messages of a
 * whole, not streamed, transaction) while each one is an Insert 'I' or Update 'U' with the new
 * tuple marker 'N' at byte 5, of relation `relid`, whose TupleData (offset 6) holds exactly
 * `ncols` values that are all text 't' or NULL 'n'. For each such message it appends what the
 * pure-Python path appends: the key's raw text (bytes for an int `key`, a tuple of bytes for a
 * tuple `key`; NULL as b"\\N") to `keys`, the COPY text line (values joined by tabs, NULL as
 * \N, backslash/tab/newline/carriage return escaped) to `lines`, the message itself to
 * `messages`. It returns (next_index, inserts, updates); next_index is the first message it did
 * not take, for which it appended nothing: the Python path decides about that one (a new
 * relation, a TOAST or binary value, a delete, and malformed data, which raises the same
 * DecodeError as without the extension). On an exception (memory) every append of the call is
 * undone, so the caller's block never holds rows it did not count.
 *
 * A second function, read_changes(), is the compiled twin of the worker's read loop
 * (gfx_sync.cdc.runner.ReplicationStream.read_batch) over the hot path of
 * gfx_sync.cdc.spool.TxAssembler.feed: it calls read() (psycopg2's read_message) and appends each
 * row change, an Insert 'I', Update 'U' or Delete 'D' payload, to `raw` (the open whole
 * transaction's message list) until raw holds `limit` messages (True: the caller spills), read()
 * returns None (None: nothing available now), or a message of another kind arrives (its payload
 * comes back, not appended, for feed). A payload that is not bytes raises TypeError; an exception
 * from read() propagates. Either way everything read before is in raw: no message is dropped.
 *
 * Only the limited (stable) C API of Python 3.11; no other headers.
 */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define SMALL 64

/* the letter after the backslash for a byte COPY text must escape, else 0 */
static const unsigned char ESC[256] = {
    ['\t'] = 't',
    ['\n'] = 'n',
    ['\r'] = 'r',
    ['\\'] = '\\',
};

typedef struct {
    Py_ssize_t off;   /* offset of the value's bytes in the message */
    Py_ssize_t len;   /* -1 for NULL */
    Py_ssize_t extra; /* bytes the escaping adds */
} Val;

static PyObject *null_text; /* b"\\N" */

/* The TupleData at offset 6 of buf[0:end] into vals[0:ncols]; the COPY line's length, or -1 when
 * the message is not a well-formed whole text row of ncols values. */
static Py_ssize_t
parse_tuple(const unsigned char *buf, Py_ssize_t end, Py_ssize_t ncols, Val *vals)
{
    Py_ssize_t pos = 6, out, i;
    if (end - pos < 2 || ((Py_ssize_t)buf[pos] << 8 | buf[pos + 1]) != ncols)
        return -1;
    pos += 2;
    out = ncols > 0 ? ncols - 1 : 0; /* the tabs */
    for (i = 0; i < ncols; i++) {
        unsigned char kind;
        if (pos >= end)
            return -1;
        kind = buf[pos];
        if (kind == 't') {
            unsigned long ulen;
            Py_ssize_t len, extra = 0;
            const unsigned char *p, *stop;
            if (end - pos < 5)
                return -1;
            ulen = (unsigned long)buf[pos + 1] << 24 | (unsigned long)buf[pos + 2] << 16 |
                   (unsigned long)buf[pos + 3] << 8 | (unsigned long)buf[pos + 4];
            if (ulen > 0x7FFFFFFFUL) /* a negative int32 */
                return -1;
            len = (Py_ssize_t)ulen;
            pos += 5;
            if (len > end - pos)
                return -1;
            for (p = buf + pos, stop = p + len; p < stop; p++)
                extra += ESC[*p] != 0;
            vals[i].off = pos;
            vals[i].len = len;
            vals[i].extra = extra;
            out += len + extra;
            pos += len;
        }
        else if (kind == 'n') {
            vals[i].off = pos;
            vals[i].len = -1;
            vals[i].extra = 0;
            out += 2;
            pos += 1;
        }
        else {
            return -1; /* 'u', 'b' or an unknown kind: the Python path's business */
        }
    }
    return out;
}

static PyObject *
value_bytes(const unsigned char *buf, const Val *v)
{
    if (v->len < 0) {
        Py_INCREF(null_text);
        return null_text;
    }
    return PyBytes_FromStringAndSize((const char *)buf + v->off, v->len);
}

static PyObject *
copy_line(const unsigned char *buf, const Val *vals, Py_ssize_t ncols, Py_ssize_t size)
{
    PyObject *line = PyBytes_FromStringAndSize(NULL, size);
    unsigned char *w;
    Py_ssize_t i;
    if (line == NULL)
        return NULL;
    w = (unsigned char *)PyBytes_AsString(line);
    if (w == NULL) {
        Py_DECREF(line);
        return NULL;
    }
    for (i = 0; i < ncols; i++) {
        const Val *v = &vals[i];
        if (i)
            *w++ = '\t';
        if (v->len < 0) {
            *w++ = '\\';
            *w++ = 'N';
        }
        else if (v->extra == 0) {
            memcpy(w, buf + v->off, (size_t)v->len);
            w += v->len;
        }
        else {
            const unsigned char *p = buf + v->off, *stop = p + v->len;
            for (; p < stop; p++) {
                unsigned char e = ESC[*p];
                if (e) {
                    *w++ = '\\';
                    *w++ = e;
                }
                else {
                    *w++ = *p;
                }
            }
        }
    }
    return line;
}

/* The key positions: 1 and *single set for an int key, the count for a tuple key; 0 when the
 * key is of another type or names a position the relation does not have (take nothing). */
static int
key_positions(PyObject *key, Py_ssize_t ncols, Py_ssize_t **idx, Py_ssize_t *small,
              int *single, Py_ssize_t *count)
{
    Py_ssize_t i, n, k;
    if (PyLong_CheckExact(key)) {
        k = PyLong_AsSsize_t(key);
        if (k == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        if (k < 0 || k >= ncols)
            return 0;
        small[0] = k;
        *idx = small;
        *single = 1;
        *count = 1;
        return 1;
    }
    if (!PyTuple_Check(key))
        return 0;
    n = PyTuple_Size(key);
    if (n < 0)
        return -1;
    *idx = n <= SMALL ? small : PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)n);
    if (*idx == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < n; i++) {
        PyObject *item = PyTuple_GetItem(key, i); /* borrowed */
        if (item == NULL)
            return -1;
        if (!PyLong_Check(item))
            return 0;
        k = PyLong_AsSsize_t(item);
        if (k == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        if (k < 0 || k >= ncols)
            return 0;
        (*idx)[i] = k;
    }
    *single = 0;
    *count = n;
    return 1;
}

static PyObject *
make_key(const unsigned char *buf, const Val *vals, const Py_ssize_t *idx, int single,
         Py_ssize_t count)
{
    PyObject *key;
    Py_ssize_t i;
    if (single)
        return value_bytes(buf, &vals[idx[0]]);
    key = PyTuple_New(count);
    if (key == NULL)
        return NULL;
    for (i = 0; i < count; i++) {
        PyObject *v = value_bytes(buf, &vals[idx[i]]);
        if (v == NULL || PyTuple_SetItem(key, i, v) < 0) { /* SetItem steals v */
            Py_DECREF(key);
            return NULL;
        }
    }
    return key;
}

/* Drop what this call appended (lists back to their sizes at entry), keeping the exception. */
static void
undo(PyObject *keys, Py_ssize_t nkeys, PyObject *lines, Py_ssize_t nlines, PyObject *messages,
     Py_ssize_t nmessages)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (PyList_Size(keys) > nkeys)
        PyList_SetSlice(keys, nkeys, PY_SSIZE_T_MAX, NULL);
    if (PyList_Size(lines) > nlines)
        PyList_SetSlice(lines, nlines, PY_SSIZE_T_MAX, NULL);
    if (PyList_Size(messages) > nmessages)
        PyList_SetSlice(messages, nmessages, PY_SSIZE_T_MAX, NULL);
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
}

PyDoc_STRVAR(whole_run_doc,
             "whole_run(raw, start, relid, ncols, key, keys, lines, messages)"
             " -> (next_index, inserts, updates)\n\n"
             "Append the key, COPY text line and message of every whole text row of relation "
             "relid in raw[start:] up to the first message that is not one; that message's "
             "index is next_index and nothing was appended for it.");

static PyObject *
whole_run(PyObject *self, PyObject *args)
{
    PyObject *raw, *key, *keys, *lines, *messages;
    Py_ssize_t start, ncols, i, inserts = 0, updates = 0;
    long long relid;
    Py_ssize_t small_idx[SMALL], *idx = small_idx, nidx = 0;
    Val small_vals[SMALL], *vals = small_vals;
    Py_ssize_t nkeys = 0, nlines = 0, nmessages = 0;
    int single = 0, ok;
    PyObject *result = NULL;

    (void)self;
    if (!PyArg_ParseTuple(args, "O!nLnOO!O!O!:whole_run", &PyList_Type, &raw, &start, &relid,
                          &ncols, &key, &PyList_Type, &keys, &PyList_Type, &lines, &PyList_Type,
                          &messages))
        return NULL;
    if (start < 0)
        start = 0;
    i = start;
    if (relid < 0 || relid > 0xFFFFFFFFLL || ncols < 0 || ncols > 0xFFFF)
        return Py_BuildValue("(nnn)", i, inserts, updates);
    ok = key_positions(key, ncols, &idx, small_idx, &single, &nidx);
    if (ok < 0)
        goto done;
    if (ok == 0) {
        result = Py_BuildValue("(nnn)", i, inserts, updates);
        goto done;
    }
    if (ncols > SMALL) {
        vals = PyMem_Malloc(sizeof(Val) * (size_t)ncols);
        if (vals == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    nkeys = PyList_Size(keys);
    nlines = PyList_Size(lines);
    nmessages = PyList_Size(messages);

    for (; i < PyList_Size(raw); i++) {
        PyObject *data = PyList_GetItem(raw, i); /* borrowed */
        PyObject *k, *line;
        char *cbuf;
        const unsigned char *buf;
        Py_ssize_t size, linesize;
        unsigned long msg_relid;
        int failed;

        if (data == NULL)
            goto fail;
        if (!PyBytes_Check(data))
            break;
        Py_INCREF(data); /* held while appending (an append may run a finalizer) */
        if (PyBytes_AsStringAndSize(data, &cbuf, &size) < 0) {
            Py_DECREF(data);
            goto fail;
        }
        buf = (const unsigned char *)cbuf;
        if (size < 6 || (buf[0] != 'I' && buf[0] != 'U') || buf[5] != 'N') {
            Py_DECREF(data);
            break;
        }
        msg_relid = (unsigned long)buf[1] << 24 | (unsigned long)buf[2] << 16 |
                    (unsigned long)buf[3] << 8 | (unsigned long)buf[4];
        if ((long long)msg_relid != relid) {
            Py_DECREF(data);
            break;
        }
        linesize = parse_tuple(buf, size, ncols, vals);
        if (linesize < 0) {
            Py_DECREF(data);
            break;
        }
        k = make_key(buf, vals, idx, single, nidx);
        if (k == NULL) {
            Py_DECREF(data);
            goto fail;
        }
        line = copy_line(buf, vals, ncols, linesize);
        if (line == NULL) {
            Py_DECREF(k);
            Py_DECREF(data);
            goto fail;
        }
        failed = PyList_Append(keys, k) < 0 || PyList_Append(lines, line) < 0 ||
                 PyList_Append(messages, data) < 0;
        Py_DECREF(k);
        Py_DECREF(line);
        if (buf[0] == 'I')
            inserts++;
        else
            updates++;
        Py_DECREF(data);
        if (failed)
            goto fail;
    }
    result = Py_BuildValue("(nnn)", i, inserts, updates);
    if (result == NULL)
        goto fail;
    goto done;
fail:
    undo(keys, nkeys, lines, nlines, messages, nmessages);
    result = NULL;
done:
    if (idx != small_idx)
        PyMem_Free(idx);
    if (vals != small_vals)
        PyMem_Free(vals);
    return result;
}

PyDoc_STRVAR(read_changes_doc,
             "read_changes(read, raw, limit) -> None | True | bytes\n\n"
             "Call read() and append each Insert/Update/Delete payload (first byte I, U or D) "
             "to raw: True once raw holds limit messages, None when read() returns None "
             "(nothing available), any other payload (not appended) as it is. A payload "
             "that is not bytes raises TypeError; exceptions from read() propagate; what was "
             "read before stays in raw.");

/* How often (in messages) the loop runs pending signal handlers and lets other threads take the
 * GIL, as the interpreter's eval loop would between the calls of the Python loop. */
#define CHECK_EVERY 1024

static PyObject *payload_name; /* "payload" */

static PyObject *
read_changes(PyObject *self, PyObject *args)
{
    PyObject *read, *raw;
    Py_ssize_t limit, n;

    (void)self;
    if (!PyArg_ParseTuple(args, "OO!n:read_changes", &read, &PyList_Type, &raw, &limit))
        return NULL;
    for (n = 0;; n++) {
        PyObject *msg, *payload;
        char *buf;
        Py_ssize_t size, len;

        if (n % CHECK_EVERY == CHECK_EVERY - 1) {
            PyThreadState *ts;
            if (PyErr_CheckSignals() < 0)
                return NULL;
            ts = PyEval_SaveThread(); /* the applier's thread may be waiting for the GIL */
            PyEval_RestoreThread(ts);
        }
        msg = PyObject_CallNoArgs(read);
        if (msg == NULL)
            return NULL;
        if (msg == Py_None)
            return msg; /* nothing available now */
        payload = PyObject_GetAttr(msg, payload_name);
        Py_DECREF(msg);
        if (payload == NULL)
            return NULL;
        if (!PyBytes_Check(payload)) {
            PyErr_Format(PyExc_TypeError, "replication message payload must be bytes, not %R",
                         (PyObject *)Py_TYPE(payload));
            Py_DECREF(payload);
            return NULL;
        }
        if (PyBytes_AsStringAndSize(payload, &buf, &size) < 0) {
            Py_DECREF(payload);
            return NULL;
        }
        if (size == 0 || (buf[0] != 'I' && buf[0] != 'U' && buf[0] != 'D'))
            return payload; /* Begin, Commit, Relation, ...: the caller feeds it */
        if (PyList_Append(raw, payload) < 0) {
            Py_DECREF(payload);
            return NULL;
        }
        Py_DECREF(payload);
        len = PyList_Size(raw);
        if (len < 0)
            return NULL;
        if (len >= limit)
            Py_RETURN_TRUE;
    }
}

static PyMethodDef methods[] = {
    {"whole_run", whole_run, METH_VARARGS, whole_run_doc},
    {"read_changes", read_changes, METH_VARARGS, read_changes_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "gfx_sync.cdc._fastrows",
    "The CDC reader's whole-row upsert loop and read loop in C (see gfx_sync.cdc.rawrows and "
    "gfx_sync.cdc.spool).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__fastrows(void)
{
    PyObject *m;
    if (null_text == NULL) {
        null_text = PyBytes_FromStringAndSize("\\N", 2);
        if (null_text == NULL)
            return NULL;
    }
    if (payload_name == NULL) {
        payload_name = PyUnicode_InternFromString("payload");
        if (payload_name == NULL)
            return NULL;
    }
    m = PyModule_Create(&module);
    return m;
}
