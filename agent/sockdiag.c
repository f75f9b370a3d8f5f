// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sock_diag access to an app socket by its exact 4-tuple and cookie:
 * SOCK_DESTROY resets a connection that our RSTs did not (agent/reset.c)
 * or a previous agent left (the app sees ECONNABORTED, the peer an RST)
 * instead of letting it hang; SKMEMINFO's rmem is
 * what the app has not read yet, injected bytes included (2-3 us a query).
 */
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "fastivc/log.h"

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void fill_id(struct inet_diag_req_v2 *r, const struct fivc_flow_key *k,
		    uint64_t cookie)
{
	bool v4 = !memcmp(k->laddr, v4_mapped, 12);

	r->sdiag_family = v4 ? AF_INET : AF_INET6;
	r->sdiag_protocol = IPPROTO_TCP;
	r->idiag_states = ~0u;
	r->id.idiag_sport = htons(k->lport);
	r->id.idiag_dport = htons(k->rport);
	if (v4) {
		memcpy(r->id.idiag_src, k->laddr + 12, 4);
		memcpy(r->id.idiag_dst, k->raddr + 12, 4);
	} else {
		memcpy(r->id.idiag_src, k->laddr, 16);
		memcpy(r->id.idiag_dst, k->raddr, 16);
	}
	r->id.idiag_cookie[0] = (uint32_t)cookie;
	r->id.idiag_cookie[1] = (uint32_t)(cookie >> 32);
	r->id.idiag_if = 0;
}

static int diag_request(uint16_t type, const struct fivc_flow_key *k,
			uint64_t cookie)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg = {};
	char buf[512];
	struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
	int fd, err = 0;
	ssize_t n;

	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -errno;
	msg.nlh.nlmsg_len = sizeof(msg);
	msg.nlh.nlmsg_type = type;
	msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	fill_id(&msg.req, k, cookie);
	if (send(fd, &msg, sizeof(msg), 0) < 0) {
		err = -errno;
		goto out;
	}
	n = recv(fd, buf, sizeof(buf), 0);
	if (n < 0)
		err = -errno;
	else if (n >= (ssize_t)sizeof(*nlh) && nlh->nlmsg_type == NLMSG_ERROR)
		err = ((struct nlmsgerr *)NLMSG_DATA(nlh))->error;
out:
	close(fd);
	return err;
}

/* Bytes queued for the app to read (sk_rmem_alloc), or -errno. */
int agent_sock_rmem(struct agent *a, const struct fivc_flow_key *k,
		    uint64_t cookie, uint32_t *rmem)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg = {};
	char buf[1024];
	struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
	ssize_t n;

	if (a->diag_fd <= 0) {
		a->diag_fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC,
				    NETLINK_SOCK_DIAG);
		if (a->diag_fd < 0)
			return -errno;
	}
	msg.nlh.nlmsg_len = sizeof(msg);
	msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.nlh.nlmsg_flags = NLM_F_REQUEST;
	fill_id(&msg.req, k, cookie);
	msg.req.idiag_ext = 1 << (INET_DIAG_SKMEMINFO - 1);
	if (send(a->diag_fd, &msg, sizeof(msg), 0) < 0)
		return -errno;
	n = recv(a->diag_fd, buf, sizeof(buf), 0);
	if (n < 0)
		return -errno;
	if (!NLMSG_OK(nlh, (size_t)n) || nlh->nlmsg_type == NLMSG_ERROR)
		return n >= (ssize_t)sizeof(*nlh) &&
				       nlh->nlmsg_type == NLMSG_ERROR
			       ? ((struct nlmsgerr *)NLMSG_DATA(nlh))->error
			       : -EIO;
	{
		struct inet_diag_msg *m = NLMSG_DATA(nlh);
		struct rtattr *rta = (struct rtattr *)(m + 1);
		int len = (int)(nlh->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));

		for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
			if (rta->rta_type == INET_DIAG_SKMEMINFO &&
			    RTA_PAYLOAD(rta) >= (SK_MEMINFO_RMEM_ALLOC + 1) *
							sizeof(__u32)) {
				*rmem = ((__u32 *)RTA_DATA(
					rta))[SK_MEMINFO_RMEM_ALLOC];
				return 0;
			}
		}
	}
	return -ENODATA;
}

int agent_sock_destroy(struct agent *a, const struct fivc_flow_key *k,
		       uint64_t cookie)
{
	int err = diag_request(SOCK_DESTROY, k, cookie);

	(void)a;
	if (err && err != -ENOENT)
		pr_warn("Failed to reset app connection %u->%u: %s", k->lport,
			k->rport, strerror(-err));
	return err;
}
