/* main.c - spool-pdf: the PDF export worker. Takes pdf.export jobs from its queues and
 * renders their datasets as paginated PDF tables (job.c, export.c, render.c). */
#include "job.h"
#include "spool/worker.h"

int main(int argc, char **argv)
{
    static sp_pdfjob_config config;
    sp_option options[SP_PDFJOB_OPTION_COUNT];
    sp_pdfjob_options(&config, options);
    sp_worker_def def = {
        .program = "spool-pdf",
        .summary = "render pdf.export jobs (CSV, NDJSON or JSON datasets) as PDF tables",
        .kind = "pdf",
        .default_queues = "pdf",
        .handler = sp_pdfjob_handle,
        .userdata = &config,
        .setup = sp_pdfjob_setup,
    };
    return sp_worker_main(&def, options, SP_PDFJOB_OPTION_COUNT, argc, argv);
}
