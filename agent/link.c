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
 * take waits in the link's queue for EPOLLOUT; a peer that leaves
 * LINK_OUT_MAX messages unread loses its link.
 * Receives never wait either (the peer is untrusted, and on Xen the bytes
 * that complete a message are pumped by this same thread): each link keeps
 * what arrived of its current message (struct fivc_tunnel_rx). A HELLO
 * not complete LINK_HELLO_NS after the accept, or a message not complete
 * LINK_FRAME_NS after its first byte, closes the link (docs/security.md,
 * "Link frames and parked messages").
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

#include "link.h"
#include "fastivc/log.h"
#include "fastivc/tunnel_msg.h"

#define LINK_HELLO_MAGIC 0x4c564946u /* "FIVL" */
#define LINK_KEEPALIVE_NS (1000 * 1000000ULL)
#define LINK_DEAD_NS (10000 * 1000000ULL)
/* An accepted link must have said its HELLO by then. */
#define LINK_HELLO_NS (3000 * 1000000ULL)
/* A message must be whole this long after its first byte came. */
#define LINK_FRAME_NS (3000 * 1000000ULL)
/* Messages read per wakeup: the loop serves the others, then comes back. */
#define LINK_RX_BUDGET 64
/*
 * Messages queued for a peer that does not read (about 150 bytes each): a
 * burst of max_tunnels connections queues a few per connection at most.
 */
#define LINK_OUT_MAX 65536u

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
	fivc_tunnel_rx_fini(&l->rx); /* and the fds of a partial message */
	while (l->out_head) {
		struct fivc_tunnel_frame *f = l->out_head;

		l->out_head = f->next;
		fivc_tunnel_frame_free(f);
	}
	agent_defer_free(a, l);
}

static void link_down(struct agent *a, struct peer_link *l, int err)
{
	if (l->hello_done && err == -ETIME)
		pr_warn("link to domain %u down: a link frame did not complete "
			"in %llu s (%zu bytes of it came)",
			l->domid, LINK_FRAME_NS / 1000000000ULL, l->rx.got);
	else if (l->hello_done)
		pr_info("link to domain %u down: %s", l->domid,
			err == -ENOTCONN    ? "closed by peer"
			: err == -ETIMEDOUT ? "no keepalive from the peer"
					    : strerror(-err));
	a->link_on->down(a, l);
	link_free(a, l);
}

/*
 * What arrived of the HELLO, without waiting: 0 once it is whole, -EAGAIN
 * while it is not, or -errno (refuse the link).
 */
static int link_read_hello(struct peer_link *l)
{
	struct link_hello h;
	ssize_t n;

	_Static_assert(sizeof(h) == sizeof(l->hello_buf), "hello size");
	n = recv(l->w.fd, l->hello_buf + l->hello_got, sizeof(h) - l->hello_got,
		 MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
	if (n == 0)
		return -ENOTCONN;
	l->hello_got += (uint8_t)n;
	if (l->hello_got < sizeof(h))
		return -EAGAIN;
	memcpy(&h, l->hello_buf, sizeof(h));
	if (h.magic != LINK_HELLO_MAGIC || h.domid > 0x7fef)
		return -EINVAL;
	l->domid = h.domid;
	l->hello_done = true;
	return 0;
}

/* One line a second at most for links that never said their HELLO. */
static void hello_timed_out(struct agent *a, uint64_t now)
{
	static uint64_t last_ns, quiet;

	a->ctr.link_hello_timeouts++;
	if (last_ns && now - last_ns < 1000000000ULL) {
		quiet++;
		return;
	}
	pr_warn("Closed a link that did not finish its HELLO in %llu s "
		"(%llu more since the last such line)",
		LINK_HELLO_NS / 1000000000ULL, (unsigned long long)quiet);
	last_ns = now;
	quiet = 0;
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
		l->out_n--;
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
		if (err == -EAGAIN)
			return;
		if (err) {
			pr_warn("Refused a link: bad hello (%s)",
				strerror(-err));
			link_free(a, l);
			return;
		}
		pr_info("link from domain %u up", l->domid);
		return; /* level-triggered: back here for what follows */
	}
	for (int i = 0; i < LINK_RX_BUDGET; i++) {
		err = fivc_tunnel_rx_read(l->w.fd, &l->rx, &m);
		if (err == -EAGAIN) {
			if (fivc_tunnel_rx_partial(&l->rx) && !l->rx_since_ns)
				l->rx_since_ns = agent_now_ns();
			return;
		}
		if (err) {
			link_down(a, l, err);
			return;
		}
		l->rx_since_ns = 0;
		l->last_rx_ns = agent_now_ns();
		if (m.type == FIVC_TMSG_KEEPALIVE)
			continue;
		if (m.type == FIVC_TMSG_CREATE ||
		    m.type == FIVC_TMSG_FALLBACK) {
			a->link_on->offer(a, l, &m); /* takes its fds */
		} else if (m.type == FIVC_TMSG_RELEASE) {
			a->link_on->release(a, l, &m);
		} else if (m.type == FIVC_TMSG_EVICT) {
			a->link_on->evict(a, l, &m);
		} else {
			a->link_on->reply(a, l, &m);
			fivc_tunnel_msg_release(&m);
		}
		if (!w->live)
			return; /* a reply's consequences took the link down */
	}
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
	fivc_tunnel_rx_init(&l->rx);
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
	int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct peer_link *l;

	(void)events;
	if (fd < 0)
		return;
	/* Only root on this machine may speak for a domain. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) ||
	    cred.uid != 0) {
		pr_warn("Refused a link: bad hello (%s)", strerror(EPERM));
		close(fd);
		return;
	}
	l = link_new(a, fd);
	if (l) {
		l->carries_fds = true;
		l->hello_deadline_ns = agent_now_ns() + LINK_HELLO_NS;
	}
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
	/*
	 * Non-blocking: a listener that does not accept (a full backlog)
	 * fails the connect at once; a fresh socket takes the 8 bytes.
	 */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    send(fd, &h, sizeof(h), MSG_NOSIGNAL) != sizeof(h)) {
		pr_info("No link to domain %u (%s): %s", domid, sun.sun_path,
			strerror(errno));
		close(fd);
		return NULL;
	}
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

bool links_settled(const struct agent *a)
{
	for (const struct peer_link *l = a->links; l; l = l->next)
		if (!l->hello_done || l->rx_since_ns)
			return false;
	return true;
}

void link_tick(struct agent *a, uint64_t now)
{
	struct peer_link *l, *next;
	struct fivc_tunnel_msg m;

	for (l = a->links; l; l = next) {
		next = l->next;
		if (!l->hello_done && now >= l->hello_deadline_ns) {
			hello_timed_out(a, now);
			link_free(a, l);
			continue;
		}
		if (l->rx_since_ns && now - l->rx_since_ns > LINK_FRAME_NS) {
			a->ctr.link_frame_timeouts++;
			link_down(a, l, -ETIME);
			continue;
		}
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
	int err;

	if (l->out_cut)
		return -EPIPE; /* being torn down: said so once */
	if (l->out_n >= LINK_OUT_MAX) {
		a->ctr.link_out_overflows++;
		pr_warn("link to domain %u: the peer reads nothing, %u "
			"messages "
			"wait for it: dropping the link",
			l->domid, l->out_n);
		l->out_cut = true;
		shutdown(l->w.fd, SHUT_RDWR);
		return -ENOBUFS;
	}
	err = fivc_tunnel_frame_new(m, &f);
	if (err) {
		pr_warn("Failed to queue a message for domain %u: %s", l->domid,
			strerror(-err));
		return err;
	}
	l->out_n++;
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

int link_init(struct agent *a, const struct link_handlers *on)
{
	struct sockaddr_un sun;
	int fd, err;

	a->link_on = on;
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
