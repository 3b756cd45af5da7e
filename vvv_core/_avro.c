/* Avro binary, a batch at a time: the project's one Avro writer, and its reader of whole batches.
 *
 * Why C: a consumer decodes and encodes a record per event, and fastavro's reader, or a writer
 * compiled to Python, costs microseconds per record in interpreted work (the README's Benchmarks
 * section has the figures). Here each record is a few hundred nanoseconds, and a batch is read
 * into columns (one list per field) instead of a dict per event.
 *
 * The schema is not parsed here: ``vvv_core/avro_codec.py`` compiles it into a program of nested
 * tuples (see ``program()`` there for the layout), which this file interprets. The reader takes
 * only records written with the reader's own schema behind the expected header; anything else
 * (another writer schema, a damaged body) is handed back by index for fastavro to read or refuse.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { T_NULL, T_BOOLEAN, T_INT, T_LONG, T_DOUBLE, T_STRING, T_ENUM, T_RECORD, T_UNION, T_MILLIS };

/* -- a growable output buffer ------------------------------------------------------------- */

typedef struct {
    char *data;
    Py_ssize_t size, capacity;
} Buffer;

static int reserve(Buffer *b, Py_ssize_t more) {
    if (b->size + more <= b->capacity) return 0;
    Py_ssize_t capacity = b->capacity ? b->capacity : 256;
    while (capacity < b->size + more) capacity *= 2;
    char *data = PyMem_Realloc(b->data, capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->capacity = capacity;
    return 0;
}

static int put(Buffer *b, const char *bytes, Py_ssize_t n) {
    if (reserve(b, n) < 0) return -1;
    memcpy(b->data + b->size, bytes, n);
    b->size += n;
    return 0;
}

/* Zig-zag, then base-128 varint: Avro's int and long. */
static int put_long(Buffer *b, int64_t value) {
    uint64_t n = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
    if (reserve(b, 10) < 0) return -1;
    while (n >= 0x80) {
        b->data[b->size++] = (char)((n & 0x7F) | 0x80);
        n >>= 7;
    }
    b->data[b->size++] = (char)n;
    return 0;
}

/* -- writing --------------------------------------------------------------------------------- */

static int write_value(PyObject *node, PyObject *value, Buffer *b);

static int write_record(PyObject *node, PyObject *value, Buffer *b) {
    PyObject *names = PyTuple_GET_ITEM(node, 1), *types = PyTuple_GET_ITEM(node, 2);
    PyObject *defaults = PyTuple_GET_ITEM(node, 3);
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (PyTuple_Check(value)) { /* positional: the fields in the schema's order */
        if (PyTuple_GET_SIZE(value) != n) {
            PyErr_Format(PyExc_ValueError, "a record of %zd fields given %zd values", n, PyTuple_GET_SIZE(value));
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++)
            if (write_value(PyTuple_GET_ITEM(types, i), PyTuple_GET_ITEM(value, i), b) < 0) return -1;
        return 0;
    }
    if (!PyDict_Check(value)) {
        PyErr_Format(PyExc_TypeError, "a record must be a dict, not %.100s", Py_TYPE(value)->tp_name);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *field = PyDict_GetItemWithError(value, PyTuple_GET_ITEM(names, i));
        if (field == NULL) {
            PyObject *fallback = PyTuple_GET_ITEM(defaults, i);
            if (PyErr_Occurred()) return -1;
            if (fallback == Py_None) { /* no default: the field is required */
                PyErr_SetObject(PyExc_KeyError, PyTuple_GET_ITEM(names, i));
                return -1;
            }
            field = PyTuple_GET_ITEM(fallback, 0);
        }
        if (write_value(PyTuple_GET_ITEM(types, i), field, b) < 0) return -1;
    }
    return 0;
}

static int write_union(PyObject *node, PyObject *value, Buffer *b) {
    PyObject *branches = PyTuple_GET_ITEM(node, 1), *by_name = PyTuple_GET_ITEM(node, 2);
    long null_at = PyLong_AsLong(PyTuple_GET_ITEM(node, 3));
    if (value == Py_None && null_at >= 0) return put_long(b, null_at);
    if (PyDict_GET_SIZE(by_name)) { /* a union of records, in fastavro's notation: (name, record) */
        if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 2) {
            PyErr_SetString(PyExc_TypeError, "a union of records takes (record name, record)");
            return -1;
        }
        PyObject *index = PyDict_GetItemWithError(by_name, PyTuple_GET_ITEM(value, 0));
        if (index == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "%R is not in the union", PyTuple_GET_ITEM(value, 0));
            return -1;
        }
        long at = PyLong_AsLong(index);
        if (put_long(b, at) < 0) return -1;
        return write_value(PyTuple_GET_ITEM(branches, at), PyTuple_GET_ITEM(value, 1), b);
    }
    /* [null, T] or [T, null]: the other branch */
    long at = null_at == 0 ? 1 : 0;
    if (put_long(b, at) < 0) return -1;
    return write_value(PyTuple_GET_ITEM(branches, at), value, b);
}

static int write_value(PyObject *node, PyObject *value, Buffer *b) {
    switch (PyLong_AsLong(PyTuple_GET_ITEM(node, 0))) {
    case T_NULL:
        return 0;
    case T_BOOLEAN: {
        int truth = PyObject_IsTrue(value);
        if (truth < 0) return -1;
        return put(b, truth ? "\x01" : "\x00", 1);
    }
    case T_MILLIS:
        if (!PyLong_CheckExact(value)) { /* a datetime: made milliseconds by the program's own function */
            PyObject *millis = PyObject_CallOneArg(PyTuple_GET_ITEM(node, 1), value);
            if (millis == NULL) return -1;
            long long n = PyLong_AsLongLong(millis);
            Py_DECREF(millis);
            if (n == -1 && PyErr_Occurred()) return -1;
            return put_long(b, n);
        }
        /* fall through */
    case T_INT:
    case T_LONG: {
        long long n = PyLong_AsLongLong(value);
        if (n == -1 && PyErr_Occurred()) return -1;
        return put_long(b, n);
    }
    case T_DOUBLE: {
        double d = PyFloat_AsDouble(value);
        if (d == -1.0 && PyErr_Occurred()) return -1;
        char bytes[8];
        if (PyFloat_Pack8(d, bytes, 1) < 0) return -1; /* little-endian */
        return put(b, bytes, 8);
    }
    case T_STRING: {
        Py_ssize_t n;
        const char *text = PyUnicode_AsUTF8AndSize(value, &n);
        if (text == NULL) return -1;
        if (put_long(b, n) < 0) return -1;
        return put(b, text, n);
    }
    case T_ENUM: {
        PyObject *index = PyDict_GetItemWithError(PyTuple_GET_ITEM(node, 2), value);
        if (index == NULL) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "%R is not a symbol of the enum", value);
            return -1;
        }
        return put_long(b, PyLong_AsLong(index));
    }
    case T_RECORD:
        return write_record(node, value, b);
    case T_UNION:
        return write_union(node, value, b);
    }
    PyErr_SetString(PyExc_ValueError, "unknown node in an Avro program");
    return -1;
}

typedef struct {
    PyObject_HEAD
    PyObject *program; /* the schema's root node */
    PyObject *prefix;  /* bytes written before each record: the single-object or registry header */
} Writer;

static PyObject *finish(Writer *self, Buffer *b) {
    PyObject *out = PyBytes_FromStringAndSize(b->data, b->size);
    b->size = 0;
    return out;
}

static int start(Writer *self, Buffer *b) {
    return put(b, PyBytes_AS_STRING(self->prefix), PyBytes_GET_SIZE(self->prefix));
}

static PyObject *Writer_call(Writer *self, PyObject *args, PyObject *kwargs) {
    PyObject *record;
    if (!PyArg_ParseTuple(args, "O", &record)) return NULL;
    Buffer b = {0};
    PyObject *out = NULL;
    if (start(self, &b) == 0 && write_value(self->program, record, &b) == 0) out = finish(self, &b);
    PyMem_Free(b.data);
    return out;
}

/* columns(columns, count): ``count`` records of a record schema, field i of record r being
 * columns[i][r] where columns[i] is a list, or columns[i] itself for every record otherwise. */
static PyObject *Writer_columns(Writer *self, PyObject *args) {
    PyObject *columns;
    Py_ssize_t count;
    if (!PyArg_ParseTuple(args, "On", &columns, &count)) return NULL;
    PyObject *types = PyTuple_GET_ITEM(self->program, 2);
    Py_ssize_t fields = PyTuple_GET_SIZE(types);
    PyObject *given = PySequence_Fast(columns, "columns must be a sequence");
    if (given == NULL) return NULL;
    if (PySequence_Fast_GET_SIZE(given) != fields) {
        PyErr_Format(PyExc_ValueError, "a record of %zd fields given %zd columns", fields,
                     PySequence_Fast_GET_SIZE(given));
        Py_DECREF(given);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < fields; i++) {
        PyObject *column = PySequence_Fast_GET_ITEM(given, i);
        if (PyList_Check(column) && PyList_GET_SIZE(column) < count) {
            PyErr_Format(PyExc_ValueError, "column %zd has %zd values for %zd records", i, PyList_GET_SIZE(column),
                         count);
            Py_DECREF(given);
            return NULL;
        }
    }
    PyObject *out = PyList_New(count);
    Buffer b = {0};
    for (Py_ssize_t r = 0; out != NULL && r < count; r++) {
        int failed = start(self, &b) < 0;
        for (Py_ssize_t i = 0; !failed && i < fields; i++) {
            PyObject *column = PySequence_Fast_GET_ITEM(given, i);
            PyObject *value = PyList_Check(column) ? PyList_GET_ITEM(column, r) : column;
            failed = write_value(PyTuple_GET_ITEM(types, i), value, &b) < 0;
        }
        PyObject *encoded = failed ? NULL : finish(self, &b);
        if (encoded == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, r, encoded);
    }
    PyMem_Free(b.data);
    Py_DECREF(given);
    return out;
}

static int Writer_init(Writer *self, PyObject *args, PyObject *kwargs) {
    PyObject *program, *prefix;
    if (!PyArg_ParseTuple(args, "O!S", &PyTuple_Type, &program, &prefix)) return -1;
    Py_XSETREF(self->program, Py_NewRef(program));
    Py_XSETREF(self->prefix, Py_NewRef(prefix));
    return 0;
}

static void Writer_dealloc(Writer *self) {
    Py_XDECREF(self->program);
    Py_XDECREF(self->prefix);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Writer_methods[] = {
    {"columns", (PyCFunction)Writer_columns, METH_VARARGS,
     "columns(columns, count) -> list of bytes: count records, field i from columns[i] (a list, or one value)"},
    {NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "vvv_core._avro.Writer",
    .tp_doc = "Writer(program, prefix): writes records of a compiled schema as prefix + Avro binary",
    .tp_basicsize = sizeof(Writer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Writer_init,
    .tp_dealloc = (destructor)Writer_dealloc,
    .tp_call = (ternaryfunc)Writer_call,
    .tp_methods = Writer_methods,
};

/* -- reading ----------------------------------------------------------------------------------- */

typedef struct {
    const unsigned char *data;
    Py_ssize_t size, at;
} Input;

/* Any malformation: the record is handed back for fastavro to read or refuse with its own reason. */
static PyObject *malformed(void) {
    PyErr_SetString(PyExc_ValueError, "malformed");
    return NULL;
}

static int get_long(Input *in, int64_t *value) {
    uint64_t n = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (in->at >= in->size) return -1;
        unsigned char byte = in->data[in->at++];
        n |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *value = (int64_t)(n >> 1) ^ -(int64_t)(n & 1);
            return 0;
        }
    }
    return -1; /* longer than a long */
}

static PyObject *read_value(PyObject *node, Input *in);

static PyObject *read_record(PyObject *node, Input *in) {
    PyObject *names = PyTuple_GET_ITEM(node, 1), *types = PyTuple_GET_ITEM(node, 2);
    PyObject *record = PyDict_New();
    for (Py_ssize_t i = 0; record != NULL && i < PyTuple_GET_SIZE(names); i++) {
        PyObject *value = read_value(PyTuple_GET_ITEM(types, i), in);
        if (value == NULL || PyDict_SetItem(record, PyTuple_GET_ITEM(names, i), value) < 0) Py_CLEAR(record);
        Py_XDECREF(value);
    }
    return record;
}

static PyObject *read_value(PyObject *node, Input *in) {
    int64_t n;
    switch (PyLong_AsLong(PyTuple_GET_ITEM(node, 0))) {
    case T_NULL:
        Py_RETURN_NONE;
    case T_BOOLEAN:
        if (in->at >= in->size || in->data[in->at] > 1) return malformed();
        return PyBool_FromLong(in->data[in->at++]);
    case T_INT:
    case T_LONG:
    case T_MILLIS:
        if (get_long(in, &n) < 0) return malformed();
        return PyLong_FromLongLong(n);
    case T_DOUBLE: {
        if (in->size - in->at < 8) return malformed();
        double d = PyFloat_Unpack8((const char *)in->data + in->at, 1);
        in->at += 8;
        return PyFloat_FromDouble(d);
    }
    case T_STRING: {
        if (get_long(in, &n) < 0 || n < 0 || n > in->size - in->at) return malformed();
        PyObject *text = PyUnicode_DecodeUTF8((const char *)in->data + in->at, n, "strict");
        in->at += n;
        return text; /* NULL on invalid UTF-8: malformed too */
    }
    case T_ENUM: {
        PyObject *symbols = PyTuple_GET_ITEM(node, 1);
        if (get_long(in, &n) < 0 || n < 0 || n >= PyTuple_GET_SIZE(symbols)) return malformed();
        return Py_NewRef(PyTuple_GET_ITEM(symbols, n));
    }
    case T_RECORD:
        return read_record(node, in);
    case T_UNION: {
        PyObject *branches = PyTuple_GET_ITEM(node, 1);
        if (get_long(in, &n) < 0 || n < 0 || n >= PyTuple_GET_SIZE(branches)) return malformed();
        return read_value(PyTuple_GET_ITEM(branches, n), in);
    }
    }
    return malformed();
}

typedef struct {
    PyObject_HEAD
    PyObject *program; /* a record schema's root node */
    PyObject *header;  /* bytes every record of this schema starts with */
} Reader;

/* columns(values) -> (columns, others): the records among ``values`` (bytes, or None) written behind the
 * header with this schema, as one list per field; ``others`` the indexes of the rest, whose place in every
 * column is None: another writer schema, another wire format, or not a whole record. */
static PyObject *Reader_columns(Reader *self, PyObject *values) {
    PyObject *given = PySequence_Fast(values, "values must be a sequence");
    if (given == NULL) return NULL;
    PyObject *types = PyTuple_GET_ITEM(self->program, 2);
    Py_ssize_t fields = PyTuple_GET_SIZE(types), count = PySequence_Fast_GET_SIZE(given);
    const char *header = PyBytes_AS_STRING(self->header);
    Py_ssize_t header_size = PyBytes_GET_SIZE(self->header);
    PyObject *columns = PyList_New(fields), *others = PyList_New(0), *row[256];
    if (fields > 256) {
        PyErr_SetString(PyExc_ValueError, "more than 256 fields");
        goto fail;
    }
    if (columns == NULL || others == NULL) goto fail;
    for (Py_ssize_t i = 0; i < fields; i++) {
        PyObject *column = PyList_New(count);
        if (column == NULL) goto fail;
        PyList_SET_ITEM(columns, i, column);
    }
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *value = PySequence_Fast_GET_ITEM(given, r);
        Py_ssize_t got = 0;
        if (PyBytes_Check(value) && PyBytes_GET_SIZE(value) >= header_size &&
            memcmp(PyBytes_AS_STRING(value), header, header_size) == 0) {
            Input in = {(const unsigned char *)PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), header_size};
            while (got < fields && (row[got] = read_value(PyTuple_GET_ITEM(types, got), &in)) != NULL) got++;
            if (got == fields && in.at != in.size) got = -1; /* trailing bytes */
            if (got < fields) {
                if (!PyErr_ExceptionMatches(PyExc_ValueError) && !PyErr_ExceptionMatches(PyExc_UnicodeDecodeError) &&
                    got >= 0)
                    goto fail; /* out of memory, not the record's fault */
                PyErr_Clear();
            }
        }
        if (got == fields) {
            for (Py_ssize_t i = 0; i < fields; i++) PyList_SET_ITEM(PyList_GET_ITEM(columns, i), r, row[i]);
            continue;
        }
        for (Py_ssize_t i = 0; i < (got < 0 ? fields : got); i++) Py_DECREF(row[i]);
        for (Py_ssize_t i = 0; i < fields; i++) PyList_SET_ITEM(PyList_GET_ITEM(columns, i), r, Py_NewRef(Py_None));
        PyObject *index = PyLong_FromSsize_t(r);
        if (index == NULL || PyList_Append(others, index) < 0) {
            Py_XDECREF(index);
            goto fail;
        }
        Py_DECREF(index);
    }
    Py_DECREF(given);
    return Py_BuildValue("(NN)", columns, others);
fail:
    Py_DECREF(given);
    Py_XDECREF(columns); /* a column's unset items are NULL: list_dealloc skips them */
    Py_XDECREF(others);
    return NULL;
}

static int Reader_init(Reader *self, PyObject *args, PyObject *kwargs) {
    PyObject *program, *header;
    if (!PyArg_ParseTuple(args, "O!S", &PyTuple_Type, &program, &header)) return -1;
    Py_XSETREF(self->program, Py_NewRef(program));
    Py_XSETREF(self->header, Py_NewRef(header));
    return 0;
}

static void Reader_dealloc(Reader *self) {
    Py_XDECREF(self->program);
    Py_XDECREF(self->header);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Reader_methods[] = {
    {"columns", (PyCFunction)Reader_columns, METH_O,
     "columns(values) -> (columns, others): the records written behind the header, one list per field"},
    {NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "vvv_core._avro.Reader",
    .tp_doc = "Reader(program, header): reads batches of records of a compiled record schema into columns",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_methods = Reader_methods,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_avro", "Avro binary, a batch at a time.", -1, NULL};

PyMODINIT_FUNC PyInit__avro(void) {
    if (PyType_Ready(&WriterType) < 0 || PyType_Ready(&ReaderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Writer", (PyObject *)&WriterType) < 0 ||
        PyModule_AddObjectRef(m, "Reader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
