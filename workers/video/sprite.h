/* sprite.h - the seek-preview sprite sheet of an HLS ladder (sprite.c): small thumbnails
 * taken from the ladder's own filtered pictures at a fixed interval (no second decode),
 * laid out as one JPEG grid, and a WebVTT file that maps each time range to its tile
 * ("sprite.jpg#xywh=x,y,w,h"). Internal to workers/video (ladder.c). */
#ifndef SPOOL_VIDEO_SPRITE_H
#define SPOOL_VIDEO_SPRITE_H

#include <libavutil/frame.h>

#include "transcode.h"

/* Bounds (docs/jobs.md, "Sprite sheet"). */
#define SP_SPRITE_MAX_TILES 300
#define SP_SPRITE_COLUMNS 10
#define SP_SPRITE_TILE_WIDTH 160
#define SP_SPRITE_TILE_MAX_HEIGHT 360

typedef struct sp__sprite sp__sprite;

/* The seconds between tiles for an input of duration seconds (0: unknown): one tile
 * per ceil(duration / 100) s, at least 2 s and at most 10 s, unless that makes more
 * than SP_SPRITE_MAX_TILES tiles, then ceil(duration / SP_SPRITE_MAX_TILES). */
int sp__sprite_interval(double duration);

/* The tile size for pictures of w x h with sample aspect sar (num 0: square): square
 * pixels, SP_SPRITE_TILE_WIDTH wide (less for a narrower picture, never upscaled), the
 * display aspect kept, at most SP_SPRITE_TILE_MAX_HEIGHT tall, both sides even. */
void sp__sprite_tile_size(int w, int h, AVRational sar, int *tw, int *th);

/* A new, empty sheet for an input of duration seconds. NULL when out of memory. The
 * caller frees it with sp__sprite_free (NULL is fine). */
sp__sprite *sp__sprite_new(double duration);
void sp__sprite_free(sp__sprite *s);

/* Offer a picture shown at t seconds (constant frame rate, in order): it becomes the
 * next tile once t reaches that tile's time. When the tiles would pass
 * SP_SPRITE_MAX_TILES (a duration the input understated or did not state) the interval
 * doubles and every other tile is dropped. 0, or SP_ENOMEM / SP_EIO. */
int sp__sprite_add(sp__sprite *s, const AVFrame *f, double t, sp_err *err);

/* Write dir/sprite.jpg (the grid, SP_SPRITE_COLUMNS tiles a row, unused cells black)
 * and dir/sprite.vtt (one cue per tile, the last one ending at end seconds) and
 * describe them in *out. SP_EINVAL when no tile was taken; on error either file may
 * be left for the caller to remove with dir. */
int sp__sprite_write(sp__sprite *s, const char *dir, double end, sp_video_sprite *out,
                     sp_err *err);

#endif
