/*
 * banned.h — functions this code base does not use, turned into compile
 * errors (the way git's banned.h does). The Makefile force-includes this
 * file into every compilation unit (-include), so a new use fails the
 * build instead of a review.
 *
 *   strcpy strcat strncpy     no bound, or a bound that does not terminate:
 *                             snprintf, memcpy with a checked length, sb_strlcpy
 *   sprintf vsprintf          no bound: snprintf, buf_printf
 *   gets                      no bound at all
 *   atoi atol atoll           no error report, undefined on overflow: strtol,
 *                             sb_int64 (util.h)
 *   strtok                    hidden static state, not thread-safe: strtok_r
 *   gmtime localtime ctime asctime   static result, not thread-safe: the _r forms
 *   tmpnam tempnam mktemp     races: mkstemp, mkdtemp
 *
 * The system headers that declare them come first, so their declarations
 * are read before the macros exist.
 */
#ifndef SB_BANNED_H
#define SB_BANNED_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef gets
#define gets(x) BANNED(gets)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
#undef atoll
#define atoll(x) BANNED(atoll)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef gmtime
#define gmtime(x) BANNED(gmtime)
#undef localtime
#define localtime(x) BANNED(localtime)
#undef ctime
#define ctime(x) BANNED(ctime)
#undef asctime
#define asctime(x) BANNED(asctime)
#undef tmpnam
#define tmpnam(x) BANNED(tmpnam)
#undef tempnam
#define tempnam(x, y) BANNED(tempnam)
#undef mktemp
#define mktemp(x) BANNED(mktemp)

#endif
