#ifndef CCURL_H
#define CCURL_H

#include <curl/curl.h>
#include <stddef.h>

/*
 * A thin shim over libcurl for Swift: curl_easy_setopt and curl_easy_getinfo
 * are variadic and cannot be called from Swift, so each option type gets a
 * typed wrapper here. No logic lives in this target.
 */

/* Calls curl_global_init(CURL_GLOBAL_DEFAULT) exactly once per process. Returns its result. */
CURLcode ccurl_global_init_once(void);

CURLcode ccurl_easy_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode ccurl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode ccurl_easy_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode ccurl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode ccurl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
/* Sets a blob option (CURLOPT_*_BLOB); libcurl copies the bytes (CURL_BLOB_COPY). */
CURLcode ccurl_easy_setopt_blob(CURL *handle, CURLoption option, const void *data, size_t length);

typedef size_t (*ccurl_data_callback)(char *buffer, size_t size, size_t nitems, void *userdata);

/* CURLOPT_WRITEFUNCTION / CURLOPT_HEADERFUNCTION with their data pointers. */
CURLcode ccurl_easy_set_write_callback(CURL *handle, ccurl_data_callback callback, void *userdata);
CURLcode ccurl_easy_set_header_callback(CURL *handle, ccurl_data_callback callback, void *userdata);

CURLcode ccurl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);

/* The result code of a CURLMSG_DONE message (a member of an anonymous union). */
CURLcode ccurl_message_result(const CURLMsg *message);

#endif
