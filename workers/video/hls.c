/* hls.c - the HLS ladder's playlists (hls.h). Every figure in the master playlist is
 * measured from what was written: BANDWIDTH is the largest segment's bit rate (video
 * plus the audio group's largest), AVERAGE-BANDWIDTH the whole rendition's, FRAME-RATE
 * the pictures written over the playlist's duration, CODECS the profile and level the
 * encoder put in its SPS. The media playlists themselves are libavformat's. */
#include "hls.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "spool/buf.h"

int sp__hls_codecs(const uint8_t *x, int size, bool audio, char *out, size_t cap, sp_err *err)
{
    const uint8_t *sps = NULL;
    if (size >= 7 && x[0] == 1) { /* avcC: version, profile, compatibility, level */
        sps = x;
    } else {
        for (int i = 0; i + 4 < size; i++) { /* Annex B: 00 00 01 NAL, type 7 */
            if (x[i] == 0 && x[i + 1] == 0 && x[i + 2] == 1 && (x[i + 3] & 0x1f) == 7) {
                sps = x + i + 3;
                break;
            }
        }
        if (sps && sps + 4 > x + size)
            sps = NULL;
    }
    if (sps == NULL)
        return sp_err_set(err, SP_EIO, "the H.264 encoder gave no SPS in its headers");
    int n = snprintf(out, cap, "avc1.%02x%02x%02x%s", sps[1], sps[2], sps[3],
                     audio ? ",mp4a.40.2" : "");
    if (n < 0 || (size_t)n >= cap)
        return sp_err_set(err, SP_EIO, "CODECS attribute too long");
    return 0;
}

/* What one media playlist says and its files weigh. */
typedef struct sp__media {
    int segments;
    double duration;
    int64_t bytes;      /* init and segments */
    int64_t seg_bytes;  /* segments only */
    double peak_bps;
} sp__media;

static int64_t sp__file_size(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path || strchr(name, '/') || stat(path, &st) < 0)
        return -1;
    return (int64_t)st.st_size;
}

/* Read dir/index.m3u8: each #EXTINF and the segment it names, and the #EXT-X-MAP. */
static int sp__measure(const char *dir, sp__media *m, sp_err *err)
{
    memset(m, 0, sizeof *m);
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/index.m3u8", dir);
    FILE *f = n > 0 && (size_t)n < sizeof path ? fopen(path, "re") : NULL;
    if (f == NULL)
        return sp_err_set(err, SP_EIO, "cannot read the media playlist %s: %s", path,
                          strerror(errno));
    char line[1024];
    double extinf = -1;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "#EXTINF:", 8) == 0) {
            extinf = strtod(line + 8, NULL);
        } else if (strncmp(line, "#EXT-X-MAP:URI=\"", 16) == 0) {
            char *uri = line + 16, *q = strchr(uri, '"');
            if (q)
                *q = '\0';
            int64_t sz = sp__file_size(dir, uri);
            if (sz < 0)
                rc = sp_err_set(err, SP_EIO, "the init segment %s/%s is missing", dir, uri);
            else
                m->bytes += sz;
        } else if (line[0] != '#' && line[0] != '\0') {
            int64_t sz = sp__file_size(dir, line);
            if (sz < 0 || extinf < 0) {
                rc = sp_err_set(err, SP_EIO, "the segment %s/%s is missing", dir, line);
                break;
            }
            m->segments++;
            m->duration += extinf;
            m->bytes += sz;
            m->seg_bytes += sz;
            /* A last segment much shorter than the rest says little about the peak. */
            if (extinf >= 0.5 && sz * 8.0 / extinf > m->peak_bps)
                m->peak_bps = sz * 8.0 / extinf;
            extinf = -1;
        }
    }
    fclose(f);
    if (rc == 0 && m->segments == 0)
        rc = sp_err_set(err, SP_EIO, "the media playlist %s lists no segments", path);
    if (rc == 0 && m->peak_bps == 0 && m->duration > 0)
        m->peak_bps = m->seg_bytes * 8.0 / m->duration;
    return rc;
}

static int sp__write_master(const char *dir, const sp_video_ladder_result *res, sp_err *err)
{
    sp_buf b;
    sp_buf_init(&b, 64 * 1024);
    int rc = sp_buf_adds(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    if (rc == 0 && res->has_audio)
        rc = sp_buf_adds(&b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"Audio\","
                             "DEFAULT=YES,AUTOSELECT=YES,URI=\"audio/index.m3u8\"\n");
    for (int i = 0; rc == 0 && i < res->count; i++) {
        const sp_video_rendition *r = &res->r[i];
        rc = sp_buf_addf(&b,
                         "#EXT-X-STREAM-INF:BANDWIDTH=%lld,AVERAGE-BANDWIDTH=%lld,"
                         "CODECS=\"%s\",RESOLUTION=%dx%d,FRAME-RATE=%.3f%s\n%s/index.m3u8\n",
                         (long long)r->peak_bps, (long long)r->average_bps, r->codecs,
                         r->width, r->height, r->frame_rate,
                         res->has_audio ? ",AUDIO=\"aac\"" : "", r->name);
    }
    if (rc < 0) {
        sp_buf_free(&b);
        return sp_err_set(err, rc, "cannot build the master playlist");
    }
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/master.m3u8", dir);
    FILE *f = n > 0 && (size_t)n < sizeof path ? fopen(path, "we") : NULL;
    if (f == NULL)
        rc = sp_err_set(err, SP_EIO, "cannot write %s: %s", path, strerror(errno));
    if (f && fwrite(sp_buf_cstr(&b), 1, b.len, f) != b.len)
        rc = sp_err_set(err, SP_EIO, "cannot write %s: %s", path, strerror(errno));
    if (f && fclose(f) != 0 && rc == 0)
        rc = sp_err_set(err, SP_EIO, "cannot write %s: %s", path, strerror(errno));
    sp_buf_free(&b);
    return rc;
}

int sp__hls_finish(const char *dir, sp_video_ladder_result *res, sp_err *err)
{
    sp__media audio = {0};
    char sub[PATH_MAX];
    int rc = 0;
    if (res->has_audio) {
        snprintf(sub, sizeof sub, "%s/audio", dir);
        rc = sp__measure(sub, &audio, err);
        res->audio_bytes = audio.bytes;
    }
    for (int i = 0; rc == 0 && i < res->count; i++) {
        sp_video_rendition *r = &res->r[i];
        sp__media m;
        int n = snprintf(sub, sizeof sub, "%s/%s", dir, r->name);
        if (n < 0 || (size_t)n >= sizeof sub)
            return sp_err_set(err, SP_EIO, "work directory path too long");
        rc = sp__measure(sub, &m, err);
        if (rc < 0)
            break;
        r->segments = m.segments;
        r->duration = m.duration;
        r->bytes = m.bytes;
        r->frame_rate = m.duration > 0 ? r->frames / m.duration : 0;
        r->peak_bps = (int64_t)(m.peak_bps + audio.peak_bps + 0.5);
        r->average_bps = (int64_t)((m.seg_bytes + audio.seg_bytes) * 8.0 /
                                   (m.duration > 0 ? m.duration : 1) + 0.5);
        if (i == 0)
            res->duration = m.duration;
    }
    if (rc == 0)
        rc = sp__write_master(dir, res, err);
    return rc;
}
