// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Control links between agents, one per peer domain, set up once and reused
 * by every tunnel (no per-connection rendezvous). Local backend: each agent
 * listens on <link_dir>/dom<domid>.sock (root only) and a link starts with a
 * HELLO naming the connecting domain; then tunnel messages flow both ways.
 * Xen backend: xlink.c sets the link up over grant pages and hands us one
 * end of a socketpair (link_adopt). Nothing tells us there that the peer
 * died, so both ends send a KEEPALIVE when idle and a link that hears
 * nothing for LINK_DEAD_NS is taken down.
 * Sends never block: two agents blocked sending to each other (a burst of
 * connections fills both sockets) would deadlock. What the socket does not
 * take waits in the link's queue for EPOLLOUT.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "fastivc/log.h"
#include "fastivc/tunnel_msg.h"

#define LINK_HELLO_MAGIC 0x4c564946u /* "FIVL" */
#define LINK_KEEPALIVE_NS (1000 * 1000000ULL)
#define LINK_DEAD_NS (10000 * 1000000ULL)

struct link_hello {
	uint32_t magic;
	uint32_t domid;
};

static int link_path(const struct agent *a, uint32_t domid,
		     struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/dom%u.sock",
		     a->cfg.link_dir, domid) >= (int)sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

static void link_free(struct agent *a, struct peer_link *l)
{
	struct peer_link **pp;

	for (pp = &a->links; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	agent_watch_del(a, &l->w);
	close(l->w.fd);
	while (l->out_head) {
		struct fivc_tunnel_frame *f = l->out_head;

		l->out_head = f->next;
		fivc_tunnel_frame_free(f);
	}
	agent_defer_free(a, l);
}

static void link_down(struct agent *a, struct peer_link *l, int err)
{
	if (l->hello_done)
		pr_info("link to domain %u down: %s", l->domid,
			err == -ENOTCONN    ? "closed by peer"
			: err == -ETIMEDOUT ? "no keepalive from the peer"
					    : strerror(-err));
	flow_link_down(a, l);
	link_free(a, l);
}

static int link_read_hello(struct peer_link *l)
{
	struct link_hello h;
	struct ucred cred;
	socklen_t len = sizeof(cred);

	/* Only root on this machine may speak for a domain. */
	if (getsockopt(l->w.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) ||
	    cred.uid != 0)
		return -EPERM;
	if (recv(l->w.fd, &h, sizeof(h), MSG_WAITALL) != sizeof(h))
		return -ENOTCONN;
	if (h.magic != LINK_HELLO_MAGIC || h.domid > 0x7fef)
		return -EINVAL;
	l->domid = h.domid;
	l->hello_done = true;
	return 0;
}

/* Send what the socket takes: 0, or -errno (the link is broken). */
static int link_flush(struct agent *a, struct peer_link *l)
{
	while (l->out_head) {
		struct fivc_tunnel_frame *f = l->out_head;
		int err = fivc_tunnel_frame_send(l->w.fd, f);

		if (err == -EAGAIN) {
			if (!l->out_waiting)
				agent_watch_mod(a, &l->w, EPOLLIN | EPOLLOUT);
			l->out_waiting = true;
			return 0;
		}
		if (err)
			return err;
		l->out_head = f->next;
		if (!l->out_head)
			l->out_tail = NULL;
		fivc_tunnel_frame_free(f);
	}
	if (l->out_waiting)
		agent_watch_mod(a, &l->w, EPOLLIN);
	l->out_waiting = false;
	return 0;
}

static void link_readable(struct agent *a, struct agent_watch *w,
			  uint32_t events)
{
	struct peer_link *l = container_of(w, struct peer_link, w);
	struct fivc_tunnel_msg m;
	int err;

	if (events & EPOLLOUT) {
		err = link_flush(a, l);
		if (err) {
			link_down(a, l, err);
			return;
		}
		if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
			return;
	}
	if (!l->hello_done) {
		err = link_read_hello(l);
		if (err) {
			pr_warn("Refused a link: bad hello (%s)",
				strerror(-err));
			link_free(a, l);
			return;
		}
		pr_info("link from domain %u up", l->domid);
		fcntl(l->w.fd, F_SETFL, fcntl(l->w.fd, F_GETFL) | O_NONBLOCK);
		return;
	}
	err = fivc_tunnel_msg_recv(l->w.fd, &m);
	if (err == -EAGAIN || err == -EINTR)
		return;
	if (err) {
		link_down(a, l, err);
		return;
	}
	l->last_rx_ns = agent_now_ns();
	if (m.type == FIVC_TMSG_KEEPALIVE)
		return;
	if (m.type == FIVC_TMSG_CREATE || m.type == FIVC_TMSG_FALLBACK) {
		flow_on_offer(a, l, &m); /* takes the message's fds */
		return;
	}
	flow_on_reply(a, l, &m);
	fivc_tunnel_msg_release(&m);
}

static struct peer_link *link_new(struct agent *a, int fd)
{
	struct peer_link *l = calloc(1, sizeof(*l));

	if (!l) {
		close(fd);
		return NULL;
	}
	l->w.fd = fd;
	l->w.fn = link_readable;
	if (agent_watch_add(a, &l->w, EPOLLIN)) {
		close(fd);
		free(l);
		return NULL;
	}
	l->next = a->links;
	a->links = l;
	return l;
}

static void link_accept(struct agent *a, struct agent_watch *w, uint32_t events)
{
	int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC);
	struct peer_link *l;

	(void)events;
	if (fd >= 0 && (l = link_new(a, fd)))
		l->carries_fds = true;
}

struct peer_link *link_get(struct agent *a, uint32_t domid)
{
	struct link_hello h = {LINK_HELLO_MAGIC, a->cfg.domid};
	struct sockaddr_un sun;
	struct peer_link *l;
	int fd;

	for (l = a->links; l; l = l->next)
		if (l->hello_done && l->domid == domid)
			return l;
	if (a->cfg.backend == FIVC_BACKEND_XEN) {
		xlink_want(a, domid); /* coresident.c should have asked */
		return NULL;
	}
	if (link_path(a, domid, &sun))
		return NULL;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    send(fd, &h, sizeof(h), MSG_NOSIGNAL) != sizeof(h)) {
		pr_info("No link to domain %u (%s): %s", domid, sun.sun_path,
			strerror(errno));
		close(fd);
		return NULL;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	l = link_new(a, fd);
	if (!l)
		return NULL;
	l->domid = domid;
	l->hello_done = true;
	l->carries_fds = true;
	pr_info("link to domain %u up", domid);
	return l;
}

struct peer_link *link_adopt(struct agent *a, int fd, uint32_t domid)
{
	struct peer_link *l = link_new(a, fd);

	if (!l)
		return NULL;
	l->domid = domid;
	l->hello_done = true;
	l->keepalive = true;
	l->last_rx_ns = agent_now_ns();
	return l;
}

void link_tick(struct agent *a, uint64_t now)
{
	struct peer_link *l, *next;
	struct fivc_tunnel_msg m;

	for (l = a->links; l; l = next) {
		next = l->next;
		if (!l->keepalive)
			continue;
		if (now - l->last_rx_ns > LINK_DEAD_NS) {
			link_down(a, l, -ETIMEDOUT);
		} else if (now - l->last_tx_ns >= LINK_KEEPALIVE_NS) {
			fivc_tunnel_msg_init(&m, FIVC_TMSG_KEEPALIVE, 0);
			link_send(a, l, &m);
		}
	}
}

/*
 * Queue @m and send what the socket takes now. A broken link is shut down
 * here and torn down from the event loop (its callers may be mid-flow).
 */
int link_send(struct agent *a, struct peer_link *l,
	      const struct fivc_tunnel_msg *m)
{
	struct fivc_tunnel_frame *f;
	int err = fivc_tunnel_frame_new(m, &f);

	if (err) {
		pr_warn("Failed to queue a message for domain %u: %s", l->domid,
			strerror(-err));
		return err;
	}
	if (l->out_tail)
		l->out_tail->next = f;
	else
		l->out_head = f;
	l->out_tail = f;
	l->last_tx_ns = agent_now_ns();
	err = link_flush(a, l);
	if (err) {
		pr_warn("Failed to send to domain %u: %s", l->domid,
			strerror(-err));
		shutdown(l->w.fd, SHUT_RDWR);
	}
	return err;
}

int link_init(struct agent *a)
{
	struct sockaddr_un sun;
	int fd, err;

	if (a->cfg.backend == FIVC_BACKEND_XEN)
		return 0; /* xlink.c sets links up as coresident.c asks */
	if (mkdir(a->cfg.link_dir, 0700) && errno != EEXIST) {
		err = -errno;
		pr_err("Failed to create %s: %s", a->cfg.link_dir,
		       strerror(errno));
		return err;
	}
	err = link_path(a, a->cfg.domid, &sun);
	if (err)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(sun.sun_path); /* stale: the pid lock proved no agent runs */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    chmod(sun.sun_path, 0600) || listen(fd, 64)) {
		err = -errno;
		pr_err("Failed to listen on %s: %s", sun.sun_path,
		       strerror(errno));
		close(fd);
		return err;
	}
	a->w_link_listen.fd = fd;
	a->w_link_listen.fn = link_accept;
	return agent_watch_add(a, &a->w_link_listen, EPOLLIN);
}

void link_fini(struct agent *a)
{
	struct sockaddr_un sun;

	while (a->links)
		link_down(a, a->links, -ESHUTDOWN);
	xlink_fini(a);
	if (a->w_link_listen.fn) {
		agent_watch_del(a, &a->w_link_listen);
		close(a->w_link_listen.fd);
		if (!link_path(a, a->cfg.domid, &sun))
			unlink(sun.sun_path);
	}
}
