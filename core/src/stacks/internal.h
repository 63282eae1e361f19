/* Private to stacks/. */
#ifndef SB_STACKS_INTERNAL_H
#define SB_STACKS_INTERNAL_H

#include "stacks.h"

/* YAML text → JSON (yaml.c): *doc the document, *marks path → [line, col]
 * (and "<path>#text" → the plain text of a scalar resolved to a non-string).
 * Errors carry err->field "compose" and "line L, column C: …". */
int stacks_yaml_to_json(const char *text, size_t len, json_t **doc, json_t **marks, struct sb_err *err);

/* Compose label names (compose 1.29). */
#define LABEL_PROJECT   "com.docker.compose.project"
#define LABEL_SERVICE   "com.docker.compose.service"
#define LABEL_NUMBER    "com.docker.compose.container-number"
#define LABEL_ONEOFF    "com.docker.compose.oneoff"
#define LABEL_HASH      "com.docker.compose.config-hash"
#define LABEL_VERSION   "com.docker.compose.version"
#define LABEL_WORKDIR   "com.docker.compose.project.working_dir"
#define LABEL_FILES     "com.docker.compose.project.config_files"
#define LABEL_NETWORK   "com.docker.compose.network"
#define LABEL_VOLUME    "com.docker.compose.volume"
#define COMPOSE_VERSION "1.29.2"

/* The engine name of a project's network or volume: "<project>_<name>". */
void stacks_object_name(const char *project, const char *name, char *out, size_t len);

#endif
