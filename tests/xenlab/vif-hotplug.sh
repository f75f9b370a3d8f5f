#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# dom0's vif hotplug script: what Debian's vif-bridge does, in busybox.
# libxl waits for hotplug-status; without it the backend never connects.
case "$1" in
online | add)
	brctl addif xenbr0 "$vif"
	ip link set "$vif" up
	xenstore-write "$XENBUS_PATH/hotplug-status" connected
	;;
esac
exit 0
