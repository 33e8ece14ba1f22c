/* main.c: the archestra-spoa command. Parses the CLI, opens the listeners,
 * starts the workers and turns signals into a drain. */
#include <errno.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authload.h"
#include "config.h"
#include "keyscli.h"
#include "spendcli.h"
#include "provider.h"
#include "log.h"
#include "request.h"
#include "server.h"
#include "spop.h"

#ifndef SPOA_VERSION
#define SPOA_VERSION "0.1.0"
#endif

static struct server *g_server;

static void on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	LOG(LL_INFO, "stopping", "signal=%s", w->signum == SIGINT ? "SIGINT" : "SIGTERM");
	server_stop(g_server);
	ev_break(loop, EVBREAK_ALL);
}

static void reload(const char *why)
{
	char err[CONFIG_ERR_LEN];
	int n = server_reload_auth(g_server, err, sizeof(err));
	char q[2 * CONFIG_ERR_LEN];
	if (n < 0)
		LOG(LL_ERROR, "reload", "trigger=%s result=refused error=\"%s\" (the previous snapshot stays in force)", why,
		    log_quote(err, q, sizeof(q)));
	else
		LOG(LL_INFO, "reload", "trigger=%s result=ok virtual_keys=%d", why, n);
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	reload("SIGHUP");
}

static void on_keys_file(struct ev_loop *loop, ev_stat *w, int revents)
{
	(void)loop;
	(void)revents;
	if (w->attr.st_nlink)
		reload(w->path); /* the keys file or the policy file changed */
}

/* `archestra-spoa haproxy-backends [--config FILE]`: HAProxy's provider backends,
 * from the same table (built in, plus the config's "providers") the agent routes by. */
static int haproxy_backends(struct config *cfg, int argc, char **argv)
{
	char err[CONFIG_ERR_LEN];
	switch (config_from_args(cfg, argc, argv, err, sizeof(err))) {
	case CLI_HELP:
		fputs("usage: archestra-spoa haproxy-backends [--config FILE] > providers.cfg\n"
		      "  HAProxy's llm_<provider> backends, for a second -f after haproxy.cfg.\n", stdout);
		return 0;
	case CLI_ERROR:
		fprintf(stderr, "archestra-spoa: %s\n", err);
		return 2;
	default:
		break;
	}
	size_t need = provider_backends_text(&cfg->providers, NULL, 0);
	char *text = malloc(need + 1);
	if (!text) {
		fprintf(stderr, "archestra-spoa: out of memory\n");
		return 1;
	}
	provider_backends_text(&cfg->providers, text, need + 1);
	int rc = fwrite(text, 1, need, stdout) == need && fflush(stdout) == 0 ? 0 : 1;
	free(text);
	return rc;
}

int main(int argc, char **argv)
{
	struct config cfg;
	char err[CONFIG_ERR_LEN];

	if (argc > 1 && strcmp(argv[1], "keys") == 0)
		return keys_cli(argc - 1, argv + 1);
	config_defaults(&cfg);
	if (argc > 1 && strcmp(argv[1], "haproxy-backends") == 0)
		return haproxy_backends(&cfg, argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "spend") == 0)
		return spend_cli(&cfg, argc - 1, argv + 1);
	switch (config_from_args(&cfg, argc, argv, err, sizeof(err))) {
	case CLI_HELP:
		fputs(config_usage, stdout);
		return 0;
	case CLI_VERSION:
		printf("archestra-spoa %s (SPOP 2.0)\n", SPOA_VERSION);
		return 0;
	case CLI_ERROR:
		fprintf(stderr, "archestra-spoa: %s\n", err);
		return 2;
	case CLI_CHECK: {
		struct auth *a = auth_load(&cfg, NULL, 0, err, sizeof(err));
		if (!a) {
			fprintf(stderr, "archestra-spoa: %s\n", err);
			return 2;
		}
		printf("configuration ok%s%s (%d virtual keys, %d provider keys, %d policy rules%s)\n",
		       cfg.config_path[0] ? ": " : "", cfg.config_path, a->keys.n, a->provider_keys.n, a->policy.n,
		       cfg.policy_file[0] ? "" : ", built in");
		auth_free(a);
		return 0;
	}
	case CLI_RUN:
		break;
	}
	log_threshold = cfg.log_level;
	signal(SIGPIPE, SIG_IGN);

	g_server = server_open(&cfg, err, sizeof(err));
	if (!g_server) {
		fprintf(stderr, "archestra-spoa: %s\n", err);
		return 1;
	}
	struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
	ev_signal sterm, sint, shup;
	ev_signal_init(&sterm, on_term, SIGTERM);
	ev_signal_init(&sint, on_term, SIGINT);
	ev_signal_init(&shup, on_hup, SIGHUP);
	ev_signal_start(loop, &sterm);
	ev_signal_start(loop, &sint);
	ev_signal_start(loop, &shup);
	ev_stat keys_watch, policy_watch;
	if (cfg.keys_file[0]) {
		/* inotify where the kernel has it, else a poll each second */
		ev_stat_init(&keys_watch, on_keys_file, cfg.keys_file, 1.0);
		ev_stat_start(loop, &keys_watch);
	}
	if (cfg.policy_file[0]) {
		ev_stat_init(&policy_watch, on_keys_file, cfg.policy_file, 1.0);
		ev_stat_start(loop, &policy_watch);
	}

	if (server_run(g_server, err, sizeof(err)) < 0) {
		fprintf(stderr, "archestra-spoa: %s\n", err);
		return 1;
	}
	char listen[CONFIG_MAX_LISTEN * 130] = "";
	for (int i = 0; i < cfg.nlisten; i++) {
		strcat(listen, i ? "," : "");
		strcat(listen, cfg.listen[i].text);
	}
	char caps[64];
	spop_caps_string(cfg.caps, caps, sizeof(caps));
	LOG(LL_INFO, "ready", "version=%s listen=%s threads=%d max_frame_size=%u capabilities=%s handler=%s prometheus=%s meter=%s",
	    SPOA_VERSION, listen, server_threads(g_server), cfg.max_frame_size, caps[0] ? caps : "none",
	    cfg.ack_only ? "ack-only" : "archestra", cfg.prometheus.enabled ? cfg.prometheus.addr_text : "off",
	    cfg.meter_on ? cfg.meter.text : "off");
	if (!cfg.meter_on)
		LOG(LL_WARN, "meter_off", "msg=\"tokens, cost and call durations are not counted (meter: off)\"");

	ev_run(loop, 0);

	struct server_stats st;
	server_wait(g_server, &st);
	server_free(g_server);
	LOG(LL_INFO, "stopped", "connections=%llu rejected=%llu notifies=%llu protocol_errors=%llu timeouts=%llu",
	    (unsigned long long)st.accepted, (unsigned long long)st.rejected, (unsigned long long)st.notifies,
	    (unsigned long long)st.proto_errors, (unsigned long long)st.timeouts);
	return 0;
}
