/*
 * EGRESS_API marks what libegress exports. libegress is built with hidden
 * visibility: a function or class without the mark stays inside the library.
 */
#ifndef EGRESS_EXPORT_H
#define EGRESS_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define EGRESS_API __attribute__((visibility("default")))
#else
#define EGRESS_API
#endif

#endif /* EGRESS_EXPORT_H */
