/* publish.h - a directory of files a library wrote (an HLS ladder) published as one
 * job's blobs, in an order that keeps the set's entry point last. */
#ifndef SPOOL_VIDEO_PUBLISH_H
#define SPOOL_VIDEO_PUBLISH_H

#include <stdint.h>

#include "spool/blob.h"
#include "spool/err.h"
#include "spool/util.h"

/* Copy every regular file under dir into blob "<prefix>/<path under dir>" of job id
 * (committed and durable): first the files that are not playlists (segments, init
 * segments), then the playlists (*.m3u8) other than `last`, and `last` (a path under
 * dir, "master.m3u8") at the very end, so a reader that follows the playlists never
 * meets a file that is not there yet. Stops with SP_ECANCELLED when *stop is set
 * (stop may be NULL). On any error the blobs published so far are removed again:
 * either the whole set is there or none of it. *files and *bytes (may be NULL) get the
 * count and total size. */
int sp_video_publish_dir(sp_blobs *b, const char *job_id, const char *dir, const char *prefix,
                         const char *last, const sp_flag *stop, int *files, int64_t *bytes,
                         sp_err *err);

/* Remove the blobs sp_video_publish_dir made from dir (still on disk): a set published
 * by an attempt that then failed. */
void sp_video_unpublish_dir(sp_blobs *b, const char *job_id, const char *dir,
                            const char *prefix);

#endif
