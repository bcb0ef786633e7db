/* picture.c - the input's half of the picture filters (transcode_int.h): what turns a
 * decoded picture, as odd as uploads make it, into a progressive, upright, SDR picture
 * at a constant frame rate that the rest of the graph only has to scale. Interlaced
 * pictures are deinterlaced (bwdif), the rate made constant (fps), the picture turned
 * upright from the display matrix as the ffmpeg command does, and HDR (PQ or HLG)
 * tone-mapped to BT.709 with zscale and tonemap when this FFmpeg has them. */
#include "transcode_int.h"

#include <math.h>
#include <stdio.h>

#include <libavutil/pixdesc.h>

/* The deinterlacer to use: bwdif (better edges), else yadif; NULL if neither. */
static const char *sp__deinterlacer(void)
{
    if (avfilter_get_by_name("bwdif"))
        return "bwdif";
    return avfilter_get_by_name("yadif") ? "yadif" : NULL;
}

static const char *sp__hdr_name(enum AVColorTransferCharacteristic trc)
{
    return trc == AVCOL_TRC_ARIB_STD_B67 ? "HLG" : "PQ";
}

int sp__video_input_filters_check(const sp__input *in, sp_err *err)
{
    if (in->hdr != AVCOL_TRC_UNSPECIFIED) {
        const char *missing = avfilter_get_by_name("zscale") == NULL    ? "zscale"
                              : avfilter_get_by_name("tonemap") == NULL ? "tonemap"
                                                                        : NULL;
        if (missing)
            return sp_err_set(err, SP_EUNSUPPORTED,
                              "input is HDR video (%s, %s): making SDR of it needs FFmpeg's "
                              "zscale and tonemap filters, and this FFmpeg build has no %s",
                              sp__hdr_name(in->hdr), av_color_transfer_name(in->hdr), missing);
    }
    if (in->interlaced && sp__deinterlacer() == NULL)
        return sp_err_set(err, SP_EUNSUPPORTED,
                          "input is interlaced video: deinterlacing it needs FFmpeg's bwdif or "
                          "yadif filter, and this FFmpeg build has neither");
    return 0;
}

/* Filters that turn the picture upright, as the ffmpeg command inserts them. */
static int sp__add_rotation(sp_buf *b, const sp__input *in)
{
    const int32_t *m = in->matrix;
    double t = in->rotation;
    if (m == NULL)
        return 0;
    if (fabs(t - 90) < 1.0)
        return sp_buf_addf(b, "transpose=%s,", m[3] > 0 ? "cclock_flip" : "clock");
    if (fabs(t - 180) < 1.0)
        return sp_buf_addf(b, "%s%s", m[0] < 0 ? "hflip," : "", m[4] < 0 ? "vflip," : "");
    if (fabs(t - 270) < 1.0)
        return sp_buf_addf(b, "transpose=%s,", m[3] < 0 ? "clock_flip" : "cclock");
    if (fabs(t) > 1.0)
        return sp_buf_addf(b, "rotate=%f*PI/180,", t);
    return m[4] < 0 ? sp_buf_adds(b, "vflip,") : 0;
}

/* HDR to SDR: linear light (nominal peak 100 cd/m2), BT.709 primaries in float RGB, the
 * Hable curve without desaturation, then BT.709 transfer and matrix in limited range,
 * 8-bit 4:2:0. The input's colour comes from the stream (zscale would otherwise trust
 * each frame's tags, which some encoders leave out). */
static int sp__add_tonemap(sp_buf *b, const sp__input *in, const AVFrame *first)
{
    const AVCodecParameters *par = in->vst->codecpar;
    const char *tin = in->hdr == AVCOL_TRC_ARIB_STD_B67 ? "arib-std-b67" : "smpte2084";
    const char *min = par->color_space == AVCOL_SPC_BT2020_CL ? "2020_cl" : "2020_ncl";
    enum AVColorRange range = par->color_range != AVCOL_RANGE_UNSPECIFIED ? par->color_range
                                                                          : first->color_range;
    const char *rin = range == AVCOL_RANGE_JPEG ? "full" : "limited";
    return sp_buf_addf(b,
                       "zscale=tin=%s:min=%s:pin=2020:rin=%s:t=linear:npl=100,"
                       "format=gbrpf32le,zscale=p=709,tonemap=tonemap=hable:desat=0,"
                       "zscale=t=709:m=709:r=limited,format=yuv420p,",
                       tin, min, rin);
}

int sp__video_input_chain(sp_buf *b, const sp__input *in, const AVFrame *first,
                          AVRational fps)
{
    int rc = 0;
    /* Before anything moves or drops a line or a picture: the two fields of a picture
     * are its even and odd lines, as stored. One picture out for each in (the frame
     * rate is kept); pictures not flagged interlaced pass untouched. */
    if (in->interlaced || first->interlaced_frame) {
        const char *d = sp__deinterlacer();
        if (d)
            rc = sp_buf_addf(b, "%s=mode=send_frame:parity=auto:deint=interlaced,", d);
    }
    if (rc == 0 && fps.num > 0)
        rc = sp_buf_addf(b, "fps=fps=%d/%d,", fps.num, fps.den);
    if (rc == 0)
        rc = sp__add_rotation(b, in);
    if (rc == 0 && in->hdr != AVCOL_TRC_UNSPECIFIED)
        rc = sp__add_tonemap(b, in, first);
    return rc;
}
