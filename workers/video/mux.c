/* mux.c - the transcoder's output file (transcode_int.h): libavformat writes the
 * preset's container under an explicit name (so the path may be a blob staging file),
 * MP4 with +faststart, the encoders' packets interleaved, then the trailer. */
#include "transcode_int.h"

#include <string.h>

int sp__video_mux_open(sp__tx *t, const char *path, sp_err *err)
{
    int rc = avformat_alloc_output_context2(&t->oc, NULL, t->p->container, path);
    if (rc < 0 || t->oc == NULL)
        return sp_err_set(err, SP_EIO, "the %s muxer is not available", t->p->container);
    t->oc->interrupt_callback.callback = sp__video_interrupted;
    t->oc->interrupt_callback.opaque = &t->in;
    rc = sp__video_encoder_open(t, err);
    if (rc == 0 && t->in.adec)
        rc = sp__video_audio_encoder_open(t, err);
    if (rc < 0)
        return rc;
    rc = avio_open2(&t->oc->pb, path, AVIO_FLAG_WRITE, &t->oc->interrupt_callback, NULL);
    if (rc < 0)
        return sp__video_write_error(rc, "creating the output", err);
    AVDictionary *mopts = NULL;
    if (strcmp(t->p->container, "mp4") == 0)
        av_dict_set(&mopts, "movflags", "+faststart", 0);
    rc = avformat_write_header(t->oc, &mopts);
    av_dict_free(&mopts);
    if (rc < 0)
        return sp__video_write_error(rc, "writing the output header", err);
    return 0;
}

int sp__video_mux_packet(sp__tx *t, const AVCodecContext *enc, AVStream *st, sp_err *err)
{
    t->pkt->stream_index = st->index;
    av_packet_rescale_ts(t->pkt, enc->time_base, st->time_base);
    int rc = av_interleaved_write_frame(t->oc, t->pkt); /* takes the packet's reference */
    if (rc < 0)
        return sp__video_write_error(rc, "writing the output", err);
    return 0;
}

int sp__video_mux_finish(sp__tx *t, sp_err *err)
{
    int rc = av_write_trailer(t->oc);
    if (rc < 0)
        return sp__video_write_error(rc, "finishing the output", err);
    if (t->oc->pb) {
        rc = avio_closep(&t->oc->pb);
        if (rc < 0)
            return sp__video_write_error(rc, "closing the output", err);
    }
    return 0;
}
