/* A C extension that does NOT declare Py_mod_gil.
 *
 * Single-phase initialisation (PyModule_Create) without PyUnstable_Module_SetGIL, as
 * most extensions written before CPython 3.13 are: on a free-threaded build, importing
 * it re-enables the GIL for the rest of the process, with a RuntimeWarning naming
 * 'gilpkg._speedups'. On a default build it is an ordinary module.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* A small hash of a bytes-like object: something for the view to call. */
static PyObject *
checksum(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    unsigned long total = 0;
    const unsigned char *bytes = view.buf;
    for (Py_ssize_t i = 0; i < view.len; i++) {
        total = (total * 31 + bytes[i]) & 0xffffffffUL;
    }
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(total);
}

static PyMethodDef methods[] = {
    {"checksum", checksum, METH_O, "checksum(data) -> int: a 32-bit rolling hash of data."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "gilpkg._speedups",
    "A C extension that does not declare Py_mod_gil.",
    -1,
    methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
