module rap/netdelay

go 1.26

require golang.org/x/sys v0.20.0
